"""The module's exceptions (`vector_service.exceptions`, as in the original), and how the
server's error kinds map onto them.

The original's hierarchy: `SemanticServiceError` is a `RuntimeError`; `VectorServiceError`
one of those; `RateLimitError` a `VectorServiceError`; `MalformedPromptError` both a
`VectorServiceError` and a `ValueError` (so `except ValueError` around a blank query still
works). The others are subclasses of `VectorServiceError`, so an `except VectorServiceError`
written for the original still catches everything.
"""

from typing import Optional


class SemanticServiceError(RuntimeError):
    """The original's base of every service error (from its `semantic_service` days)."""


class VectorServiceError(SemanticServiceError):
    """Any failure of a call: the server's error, or the server could not be reached.

    `kind` is the server's stable error kind (`backend`, `unavailable`, ...), `status` the HTTP
    status (None when no answer arrived), `retry_after` the seconds the server asked to wait.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "failed",
        status: Optional[int] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


class MalformedPromptError(VectorServiceError, ValueError):
    """The input was refused: a blank query or task, a bound exceeded, a malformed request."""


class RateLimitError(VectorServiceError):
    """The tenant's request rate, or the backend's after its retry, was exceeded."""


class RetrieverConfigurationError(VectorServiceError):
    """The original's error for a retriever built without its databases; the server owns
    them here, so the client raises it only if the server says a tenant has none."""


class AuthenticationError(VectorServiceError):
    """No API key, a wrong one, or a request the server refuses from where it comes."""


class LimitExceededError(VectorServiceError):
    """A sandbox limit stopped the call: body size, memory, deadline, host-call bytes."""


class BackendError(VectorServiceError):
    """The tenant's store or embedder failed; the message is the backend's."""


class ServiceUnavailableError(VectorServiceError):
    """The server is down, overloaded, or the tenant's store cannot be opened: retry later."""


class ServiceTimeoutError(ServiceUnavailableError):
    """No answer within the client's timeout."""


class NotFoundError(VectorServiceError):
    """The route or the backfill job does not exist."""


class ConflictError(VectorServiceError):
    """The tenant already runs a backfill."""


class BackfillError(VectorServiceError):
    """A backfill ended without embedding every database; `report` is its answer, if any."""

    def __init__(self, message: str, *, report: Optional[dict] = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.report = report


class ErrorResult(Exception):
    """The original's marker for a failed lookup inside the context builder; kept so code that
    names it (`except ErrorResult`) still loads."""


# The server's error kinds (the OpenAPI document's `ErrorDetail.kind`) by exception.
_BY_KIND = {
    "malformed-prompt": MalformedPromptError,
    "bad-request": MalformedPromptError,
    "unsupported-media-type": MalformedPromptError,
    "rate-limited": RateLimitError,
    "unauthorized": AuthenticationError,
    "admin-disabled": AuthenticationError,
    "forbidden-origin": AuthenticationError,
    "forbidden-host": AuthenticationError,
    "too-large": LimitExceededError,
    "limit-exceeded": LimitExceededError,
    "deadline-exceeded": LimitExceededError,
    "memory-limit": LimitExceededError,
    "host-call-limit": LimitExceededError,
    "backend": BackendError,
    # The tenant's store refuses writes (a damaged file) or the disk under it is full.
    "store-damaged": BackendError,
    "storage-full": BackendError,
    "overloaded": ServiceUnavailableError,
    "unavailable": ServiceUnavailableError,
    "request-timeout": ServiceTimeoutError,
    "not-found": NotFoundError,
    "method-not-allowed": NotFoundError,
    "conflict": ConflictError,
    "cancelled": BackfillError,
    "internal": VectorServiceError,
}


def error_for(
    kind: str, message: str, status: Optional[int], retry_after: Optional[float]
) -> VectorServiceError:
    """The exception for the server's error `kind` (`VectorServiceError` for an unknown one)."""
    cls = _BY_KIND.get(kind, VectorServiceError)
    return cls(message, kind=kind, status=status, retry_after=retry_after)


__all__ = [
    "SemanticServiceError",
    "VectorServiceError",
    "RateLimitError",
    "MalformedPromptError",
    "RetrieverConfigurationError",
    "ErrorResult",
    "AuthenticationError",
    "LimitExceededError",
    "BackendError",
    "ServiceUnavailableError",
    "ServiceTimeoutError",
    "NotFoundError",
    "ConflictError",
    "BackfillError",
]
