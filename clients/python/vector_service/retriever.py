"""`vector_service.retriever`, as in the original: `Retriever` and `FallbackResult`."""

from typing import Any, Dict, List, Optional, Sequence, Union
from urllib.parse import quote

from ._operation import TUNING, _ignore, _in_thread, _Operation, _body, _text, _warn_about
from .decorators import log_and_measure


class FallbackResult(list):
    """The hits of a search with no confident answer: a list (one heuristic entry) that also
    says why (`reason`: "no results" or "low confidence") and the last `confidence`."""

    def __init__(self, reason: str, results: Sequence[Any], confidence: float = 0.0) -> None:
        super().__init__(results)
        self.reason = reason
        self.confidence = confidence

    @property
    def results(self) -> List[Any]:
        """The entries, as the original's `FallbackResult.results`."""
        return list(self)

    def __repr__(self) -> str:
        return (
            f"FallbackResult(reason={self.reason!r}, results={list(self)!r}, "
            f"confidence={self.confidence!r})"
        )


def _typed_record_id(hit: Dict[str, Any]) -> Dict[str, Any]:
    """The server keeps record ids as strings; the original's databases gave integer row ids.
    Where the record's own metadata carries its `id` as a number that reads the same, the hit
    gives that number, so `hit["record_id"] == bot_id` holds as it did."""
    record_id, own = hit.get("record_id"), (hit.get("metadata") or {}).get("id")
    if (isinstance(record_id, str) and isinstance(own, (int, float))
            and not isinstance(own, bool) and str(own) == record_id):
        hit["record_id"] = own
    return hit


class Retriever(_Operation):
    """`Retriever.search` (`POST /v1/search`). `top_k` and `similarity_threshold` are the
    defaults of its searches, as the original's fields were."""

    def __init__(self, url: Any = None, *, top_k: int = 5, similarity_threshold: float = 0.1,
                 **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.top_k = top_k
        self.similarity_threshold = similarity_threshold

    @log_and_measure
    def search(self, query: str, *, top_k: Optional[int] = None, session_id: str = "",
               similarity_threshold: Optional[float] = None,
               origins: Optional[List[str]] = None, dbs: Optional[Sequence[str]] = None,
               **ignored: Any) -> Union[List[Dict[str, Any]], FallbackResult]:
        """Hits as dicts `{origin_db, record_id, score, reason, metadata}`, best first; a
        `FallbackResult` when no attempt was confident. `dbs` (the newest original's) names
        the origins to search, as `origins` does; its other tuning keywords are ignored."""
        _ignore("Retriever.search", ignored, TUNING)
        origins = list(origins or dbs or []) or None
        answer = _warn_about(self.client.request("POST", "/v1/search", _body(
            query=_text("query", query),
            top_k=self.top_k if top_k is None else top_k,
            session_id=session_id,
            threshold=self.similarity_threshold if similarity_threshold is None
            else similarity_threshold,
            origins=origins)), "Retriever.search")
        hits = [_typed_record_id(hit) for hit in answer["hits"]]
        fallback = answer.get("fallback")
        if fallback:
            return FallbackResult(fallback["reason"], hits, fallback["confidence"])
        return hits

    # The original's helpers: a record's metric, 0.0 when it cannot be read ----------------
    def error_frequency(self, error_id: Any) -> float:
        """The error record's `frequency` (database `errors`), as the original exposed it."""
        return self._metric("errors", error_id, "frequency")

    def workflow_usage(self, wf: Any) -> float:
        """The workflow record's `usage` (database `workflows`); `wf` is its id, or a record
        (a mapping or an object) with an `id`."""
        if isinstance(wf, dict):
            wf = wf.get("id")
        elif not isinstance(wf, (str, int)):
            wf = getattr(wf, "id", None)
        return self._metric("workflows", wf, "usage")

    def bot_deploy_freq(self, bot_id: Any) -> float:
        """The bot record's `deploy_count` (database `bots`)."""
        return self._metric("bots", bot_id, "deploy_count")

    def _metric(self, db: str, record_id: Any, key: str) -> float:
        """`metadata[key]` of record `record_id` of `db` (`GET /v1/records/{db}/{id}`); 0.0 when
        the record, the key or the server is missing, as the original answered any failure."""
        if record_id is None:
            return 0.0
        try:
            record = self.client.request(
                "GET", f"/v1/records/{quote(db, safe='')}/{quote(str(record_id), safe='')}")
            return float(record["metadata"].get(key, 0.0))
        except Exception:
            return 0.0

    async def search_async(self, query: str, **kwargs: Any) -> Union[List[Dict[str, Any]],
                                                                      FallbackResult]:
        """[`search`] without blocking the event loop."""
        return await _in_thread(self.search, query, **kwargs)


__all__ = ["Retriever", "FallbackResult"]
