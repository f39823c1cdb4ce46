"""The `vector_service` module's API, served by a vector-service server.

The four classes keep the original module's names and call signatures, so call sites stay as
they are; only construction names the server (or `$VECTOR_SERVICE_URL` and
`$VECTOR_SERVICE_API_KEY` do). Standard library only.

    from vector_service import Retriever, FallbackResult, MalformedPromptError

    hits = Retriever().search("upload failed", top_k=3, session_id="s-1")
    if isinstance(hits, FallbackResult):
        print("no confident answer:", hits.reason, hits.confidence)
"""

import json
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ._errors import (
    AuthenticationError,
    BackendError,
    BackfillError,
    ConflictError,
    LimitExceededError,
    MalformedPromptError,
    NotFoundError,
    RateLimitError,
    ServiceTimeoutError,
    ServiceUnavailableError,
    VectorServiceError,
    error_for,
)
from ._http import Client

__all__ = [
    "Retriever",
    "ContextBuilder",
    "PatchLogger",
    "EmbeddingBackfill",
    "FallbackResult",
    "Client",
    "VectorServiceError",
    "MalformedPromptError",
    "RateLimitError",
    "AuthenticationError",
    "LimitExceededError",
    "BackendError",
    "ServiceUnavailableError",
    "ServiceTimeoutError",
    "NotFoundError",
    "ConflictError",
    "BackfillError",
]


class FallbackResult(list):
    """The hits of a search with no confident answer: a list (one heuristic entry) that also
    says why (`reason`: "no results" or "low confidence") and the last `confidence`."""

    def __init__(self, reason: str, results: Sequence[Any], confidence: float = 0.0) -> None:
        super().__init__(results)
        self.reason = reason
        self.confidence = confidence

    def __repr__(self) -> str:
        return (
            f"FallbackResult(reason={self.reason!r}, results={list(self)!r}, "
            f"confidence={self.confidence!r})"
        )


def _client(url: Optional[str], api_key: Optional[str], timeout: Optional[float],
            client: Optional[Client]) -> Client:
    return client if client is not None else Client(url, api_key, timeout)


def _text(name: str, value: Any) -> str:
    """The original refused a query or task that is not a non-empty string before any call."""
    if not isinstance(value, str) or not value.strip():
        raise MalformedPromptError(f"{name} must be a non-empty string", kind="malformed-prompt")
    return value


def _body(**fields: Any) -> Dict[str, Any]:
    """A request body without the fields left at their defaults (None, or an empty session)."""
    return {k: v for k, v in fields.items() if v is not None and not (k == "session_id" and v == "")}


class _Operation:
    def __init__(self, url: Optional[str] = None, *, api_key: Optional[str] = None,
                 timeout: Optional[float] = None, client: Optional[Client] = None) -> None:
        self.client = _client(url, api_key, timeout, client)


class Retriever(_Operation):
    """`Retriever.search` (`POST /v1/search`)."""

    def search(self, query: str, *, top_k: Optional[int] = None, session_id: str = "",
               similarity_threshold: Optional[float] = None,
               origins: Optional[List[str]] = None) -> Union[List[Dict[str, Any]], FallbackResult]:
        """Hits as dicts `{origin_db, record_id, score, reason, metadata}`, best first; a
        `FallbackResult` when no attempt was confident."""
        answer = self.client.request("POST", "/v1/search", _body(
            query=_text("query", query), top_k=top_k, session_id=session_id,
            threshold=similarity_threshold, origins=origins or None))
        hits = answer["hits"]
        fallback = answer.get("fallback")
        if fallback:
            return FallbackResult(fallback["reason"], hits, fallback["confidence"])
        return hits


class ContextBuilder(_Operation):
    """`ContextBuilder.build` (`POST /v1/context`)."""

    def build(self, query: str, *, top_k: Optional[int] = None, session_id: str = "",
              max_tokens: Optional[int] = None, db_weights: Optional[Dict[str, float]] = None,
              return_metadata: bool = False) -> Union[str, Tuple[str, Dict[str, Any]]]:
        """The compact JSON context as the original returned it (a string, no spaces, buckets
        in order); with `return_metadata`, `(context, metadata)` where metadata holds
        `entries` (each with its reliability), `session_id` and `from_cache`."""
        answer = self.client.request("POST", "/v1/context", _body(
            task=_text("query", query), top_k=top_k, session_id=session_id,
            max_tokens=max_tokens, db_weights=db_weights or None))
        context = json.dumps(answer["context"], separators=(",", ":"), ensure_ascii=False)
        if return_metadata:
            return context, {k: v for k, v in answer.items() if k != "context"}
        return context


class PatchLogger(_Operation):
    """`PatchLogger.track_contributors` (`POST /v1/contributors`)."""

    def track_contributors(self, vector_ids: Sequence[str], result: bool, *, patch_id: str = "",
                           session_id: str = "", contribution: Optional[float] = None,
                           roi_tag: Optional[str] = None) -> Dict[str, Any]:
        """Record a patch's outcome against the `origin:id` vectors that contributed. Returns
        the server's answer (`status`, `written_to`, `rows`, `roi_tag`, `warnings`); raises
        when the outcome could not be written anywhere (the original lost it silently)."""
        return self.client.request("POST", "/v1/contributors", _body(
            vector_ids=list(vector_ids), success=bool(result), patch_id=patch_id,
            session_id=session_id, contribution=contribution, roi_tag=roi_tag))


class EmbeddingBackfill(_Operation):
    """`EmbeddingBackfill.run` (`POST /v1/backfill`, a job the client waits for)."""

    def run(self, *, session_id: str = "", batch_size: Optional[int] = None,
            dbs: Optional[List[str]] = None, poll_interval: float = 0.25,
            wait_timeout: Optional[float] = None) -> Dict[str, Any]:
        """Backfill the missing embeddings of every embeddable database (or `dbs`) and wait
        for it: the report `{session_id, status, databases}`. Raises `BackfillError` (with
        the report) when a database failed, `ConflictError` when one runs already. After
        `wait_timeout` seconds the job is cancelled and `ServiceTimeoutError` raised."""
        job = self.client.request("POST", "/v1/backfill", _body(
            session_id=session_id, batch_size=batch_size, dbs=dbs or None))
        path = "/v1/backfill/" + job["job"]
        deadline = None if wait_timeout is None else time.monotonic() + wait_timeout
        while job["status"] in ("running", "cancelling"):
            if deadline is not None and time.monotonic() > deadline:
                self.client.request("DELETE", path)
                raise ServiceTimeoutError(
                    f"backfill job {job['job']} did not finish within {wait_timeout} s; "
                    "it was cancelled (its whole batches are kept)", kind="timeout")
            time.sleep(poll_interval)
            job = self.client.request("GET", path)
        if job["status"] == "succeeded":
            return job["result"]
        report = job.get("result")
        if report is not None:
            failed = [d["name"] for d in report["databases"] if d.get("error")]
            raise BackfillError(f"backfill failed for {', '.join(failed)}", kind="backfill-failed",
                                report=report)
        error = job.get("error") or {"kind": "failed", "message": "the backfill job failed"}
        raise error_for(error["kind"], error["message"], None, None)
