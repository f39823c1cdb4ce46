"""`EmbeddableDBMixin`, as the original's: a database class mixes it in to embed its records
and search them by similarity. Here the service holds the embeddings: `add_embedding` sends
the record's text to the server (as a record of database `vector_service_db`, origin `kind`)
and has it embedded; `search_by_vector` searches the server.

A vector cannot cross HTTP as the original's did: the service embeds text itself. So
`encode_text(text)` returns an `EncodedText` (an empty list that carries `.text`), the
subclass's `vector(record)` returns it as before (`return self.encode_text(text)`), and
`search_by_vector(self.encode_text(query))` searches for that text. A vector of numbers
(the subclass's own model) is refused with `MalformedPromptError`.
"""

import logging
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from ._operation import BACKENDS, _client, _ignore
from .embedding_backfill import EmbeddingBackfill
from .exceptions import MalformedPromptError

_LOCAL_INDEX = {
    "index_path": "embeddings.ann",
    "metadata_path": "embeddings.json",
    "model_name": "sentence-transformers/all-MiniLM-L6-v2",
    "backend": "annoy",
}


class EncodedText(list):
    """What `encode_text` returns: the text the service embeds, in the place of its vector."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def __repr__(self) -> str:
        return f"EncodedText({self.text!r})"


class EmbeddableDBMixin:
    """Embedding storage and similarity search for a database class, through the service.

    The original's keywords are accepted: `embedding_version` is kept with each record; the
    local index's (`index_path`, `metadata_path`, `model_name`, `backend`) are ignored with one
    warning, since the service owns the index and the model. `url`, `api_key`, `timeout` or
    `client` say where the server is (else `$VECTOR_SERVICE_URL`, `$VECTOR_SERVICE_API_KEY`).
    The records go to database `vector_service_db` (a class attribute; default: the class's
    name)."""

    vector_service_db: Optional[str] = None

    def __init__(self, *, embedding_version: int = 1, url: Optional[str] = None,
                 api_key: Optional[str] = None, timeout: Optional[float] = None,
                 client: Any = None, **local_index: Any) -> None:
        _ignore("EmbeddableDBMixin", {k for k, v in local_index.items()
                                      if k in _LOCAL_INDEX and v != _LOCAL_INDEX[k]}, BACKENDS)
        unknown = set(local_index) - set(_LOCAL_INDEX)
        if unknown:
            raise TypeError(f"EmbeddableDBMixin got unexpected keywords {sorted(unknown)}")
        self.embedding_version = embedding_version
        self._vs_client = _client(url, api_key, timeout, client)

    @property
    def _vector_service(self) -> Any:
        """The server's client; from the environment when a subclass's `__init__` did not
        call this one's (the original's mixin needed no call either)."""
        if "_vs_client" not in self.__dict__:
            self._vs_client = _client(None, None, None, None)
        return self._vs_client

    @property
    def _kinds(self) -> Set[str]:
        """The kinds this object has sent, which its searches are limited to."""
        return self.__dict__.setdefault("_vs_kinds", set())

    @property
    def _db(self) -> str:
        return self.vector_service_db or type(self).__name__

    # The original's methods for subclasses ------------------------------------------------
    def encode_text(self, text: str) -> EncodedText:
        """The text, to be embedded by the service (see the module's doc)."""
        return EncodedText(text)

    def vector(self, record: Any) -> Any:
        """Override: `return self.encode_text(<the record's text>)`. A string is its own text."""
        if isinstance(record, str):
            return self.encode_text(record)
        raise NotImplementedError

    def iter_records(self) -> Iterator[Tuple[Any, Any, str]]:
        """Override for `backfill_embeddings`: `(record_id, record, kind)` of every record."""
        raise NotImplementedError

    # Public API ----------------------------------------------------------------------------
    def add_embedding(self, record_id: Any, record: Any, kind: str, *,
                      source_id: str = "") -> None:
        """Send the record's text to the service and have it embedded."""
        self._send([(record_id, record, kind)], source_id)
        self._embed()

    def try_add_embedding(self, record_id: Any, record: Any, kind: str, *,
                          source_id: str = "") -> None:
        """Best-effort [`add_embedding`]: a failure is logged, not raised."""
        try:
            self.add_embedding(record_id, record, kind, source_id=source_id)
        except Exception:
            logging.exception("embedding hook failed for %s", record_id)

    def backfill_embeddings(self, batch_size: Optional[int] = None) -> None:
        """Send every record of `iter_records` and embed those the service has not embedded
        (the server skips records whose text it already embedded), `batch_size` at a time."""
        self._send(list(self.iter_records()), "")
        self._embed(batch_size)

    def search_by_vector(self, vector: Sequence[Any], top_k: int = 10) -> List[Tuple[str, float]]:
        """`(record_id, score)` of the `top_k` records most like the text `vector` carries,
        best first, among the kinds this object has sent (all when none). Record ids come back
        as strings, as the original's index kept them; a score is a similarity (higher is
        closer), where the original's Annoy gave a distance."""
        text = getattr(vector, "text", None)
        if not isinstance(text, str):
            raise MalformedPromptError(
                "search_by_vector needs the text to search for: pass self.encode_text(text) "
                "or self.vector(record); the service embeds text itself, so a vector of numbers "
                "cannot be searched", kind="malformed-prompt")
        answer = self._vector_service.request("POST", "/v1/search", {
            "query": text, "top_k": top_k, "threshold": 0.0,
            **({"origins": sorted(self._kinds)} if self._kinds else {})})
        if answer.get("fallback"):
            return []
        return [(hit["record_id"], hit["score"]) for hit in answer["hits"]
                if hit.get("record_id") is not None]

    def get_vector(self, record_id: Any) -> Optional[List[float]]:
        """None: the service keeps the vectors and does not hand them out."""
        return None

    def load_index(self) -> None:
        """Nothing to load: the service owns the index."""

    def save_index(self) -> None:
        """Nothing to save: the service owns the index."""

    def update_embedding_version(self, record_id: Any, *,
                                 embedding_version: Optional[int] = None) -> None:
        """Nothing to do: the service re-embeds a record whose text or embedder changed."""

    def update_embedding_versions(self, record_ids: Sequence[Any], *,
                                  embedding_version: Optional[int] = None) -> None:
        """Nothing to do, as [`update_embedding_version`]."""

    # Internal -------------------------------------------------------------------------------
    def _embed(self, batch_size: Optional[int] = None) -> None:
        """The server's backfill of this class's database alone."""
        EmbeddingBackfill(client=self._vector_service)._run_job(
            dbs=[self._db], batch_size=batch_size)

    def _send(self, records: List[Tuple[Any, Any, str]], source_id: str) -> None:
        for record_id, record, kind in records:
            encoded = self.vector(record)
            text = getattr(encoded, "text", None)
            if not isinstance(text, str):
                raise MalformedPromptError(
                    f"{type(self).__name__}.vector() returned numbers; the service embeds text "
                    "itself: return self.encode_text(text)", kind="malformed-prompt")
            metadata: Dict[str, Any] = {"kind": kind, "embedding_version": self.embedding_version}
            if source_id:
                metadata["source_id"] = source_id
            self._vector_service.request("POST", "/v1/records", {
                "db": self._db, "origin_db": kind, "id": str(record_id), "text": text,
                "metadata": metadata})
            self._kinds.add(kind)


__all__ = ["EmbeddableDBMixin", "EncodedText"]
