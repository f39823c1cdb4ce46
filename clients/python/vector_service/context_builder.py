"""`vector_service.context_builder`, as in the original: `ContextBuilder`."""

import json
from typing import Any, Dict, Optional, Tuple, Union

from ._operation import TUNING, _ignore, _in_thread, _Operation, _body, _text, _warn_about
from .decorators import log_and_measure
from .exceptions import ErrorResult
from .retriever import Retriever


class ContextBuilder(_Operation):
    """`ContextBuilder.build_context` (`POST /v1/context`). `db_weights` and `max_tokens` are
    the defaults of its builds, as in the original. A `retriever=` that is this package's
    `Retriever` lends its server connection; any other backend object is ignored."""

    def __init__(self, url: Any = None, *, db_weights: Optional[Dict[str, float]] = None,
                 max_tokens: Optional[int] = None, retriever: Any = None,
                 **kwargs: Any) -> None:
        if isinstance(retriever, Retriever) and url is None and "client" not in kwargs:
            kwargs["client"] = retriever.client
        elif retriever is not None:
            kwargs["retriever"] = retriever
        super().__init__(url, **kwargs)
        self.db_weights = dict(db_weights or {})
        self.max_tokens = max_tokens

    @log_and_measure
    def build_context(self, query: str, top_k: int = 5, *, session_id: Optional[str] = "",
                      max_tokens: Optional[int] = None,
                      db_weights: Optional[Dict[str, float]] = None,
                      return_metadata: bool = False,
                      **ignored: Any) -> Union[str, Tuple[str, Dict[str, Any]]]:
        """The compact JSON context as the original returned it (a string, no spaces, buckets
        in order); with `return_metadata`, `(context, metadata)` where metadata holds
        `entries` (each with its reliability), `session_id` and `from_cache`. The newest
        original's other keywords (`include_vectors`, `prioritise`, ...) are ignored."""
        _ignore("ContextBuilder.build_context", ignored, TUNING)
        answer = _warn_about(self.client.request("POST", "/v1/context", _body(
            task=_text("query", query), top_k=top_k, session_id=session_id or "",
            max_tokens=self.max_tokens if max_tokens is None else max_tokens,
            db_weights=db_weights or self.db_weights or None)), "ContextBuilder.build_context")
        context = json.dumps(answer["context"], separators=(",", ":"), ensure_ascii=False)
        if return_metadata:
            return context, {k: v for k, v in answer.items() if k != "context"}
        return context

    def build(self, query: str, **kwargs: Any) -> Union[str, Tuple[str, Dict[str, Any]]]:
        """The original's older name of [`build_context`]."""
        if kwargs.get("top_k") is None:
            kwargs.pop("top_k", None)
        return self.build_context(query, **kwargs)

    async def build_async(self, query: str, **kwargs: Any) -> Union[str,
                                                                   Tuple[str, Dict[str, Any]]]:
        """[`build_context`] without blocking the event loop."""
        return await _in_thread(self.build, query, **kwargs)


__all__ = ["ContextBuilder", "ErrorResult"]
