"""What the four operations share: the client they talk through and how a request body is
made."""

import asyncio
import functools
import os
import sys
import warnings
from typing import Any, Callable, Dict, Optional

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


BACKENDS = "the server owns the backends (databases, retrievers, embedders, metrics stores)"
TUNING = "the server's version of this call does not use them"


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _warn(message: str) -> None:
    """A warning attributed to the caller's line outside this package (however many of its
    methods and decorators are between), so Python shows it once per call site."""
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)


def _ignore(owner: str, names: Any, why: str) -> None:
    """Keywords (or a positional object) the original took that this client cannot honour:
    accepted so call sites stay as they are, and named in a warning saying why. Python shows
    a warning once per call site."""
    names = sorted(names)
    if names:
        _warn(f"vector_service.{owner}: {', '.join(names)} ignored: {why}")


def _warn_about(answer: Dict[str, Any], owner: str) -> Dict[str, Any]:
    """The server's `warnings` (a query or task cut at its bound) as Python warnings, one per
    call site, so a caller that passes a whole log learns that only its start was read."""
    for warning in answer.get("warnings") or ():
        _warn(f"vector_service.{owner}: {warning}")
    return answer


async def _in_thread(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`call` on the default executor, as the original's `*_async` methods ran theirs
    (`asyncio.to_thread`, which Python 3.8 lacks)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(call, *args, **kwargs))


class _Operation:
    """Where the server is: `url` (else `$VECTOR_SERVICE_URL`), `api_key`, `timeout`, or a
    `client` to share. The original's constructor keywords are accepted too: those that
    configure behaviour are kept by each class, the others ignored with a warning."""

    def __init__(self, url: Any = None, *, api_key: Optional[str] = None,
                 timeout: Optional[float] = None, client: Optional[Client] = None,
                 **original: Any) -> None:
        if url is not None and not isinstance(url, str):
            # The original's first positional argument was a backend object.
            original["<positional>"] = url
            url = None
        _ignore(type(self).__name__, original, BACKENDS)
        self.client = _client(url, api_key, timeout, client)
