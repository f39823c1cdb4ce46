"""`vector_service.retriever`, as in the original: `Retriever` and `FallbackResult`."""

from typing import Any, Dict, List, Optional, Sequence, Union

from ._operation import _Operation, _body, _text


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


__all__ = ["Retriever", "FallbackResult"]
