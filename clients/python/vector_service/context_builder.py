"""`vector_service.context_builder`, as in the original: `ContextBuilder`."""

import json
from typing import Any, Dict, Optional, Tuple, Union

from ._operation import _Operation, _body, _text
from .exceptions import ErrorResult


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


__all__ = ["ContextBuilder", "ErrorResult"]
