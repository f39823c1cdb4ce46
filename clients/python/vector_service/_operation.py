"""What the four operations share: the client they talk through and how a request body is
made."""

from typing import Any, Dict, Optional

from ._http import Client
from .exceptions import MalformedPromptError


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
