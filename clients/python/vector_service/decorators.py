"""`vector_service.decorators`, as in the original: `log_and_measure` (and its two older
names) wraps a function so each call is logged with its duration and outcome. The server
already logs and measures every operation; these are for the caller's own functions, as
the original's callers use them."""

import functools
import logging
import time
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_log = logging.getLogger("vector_service")


def log_and_measure(func: F) -> F:
    """Log each call of `func` with its `session_id` keyword (when given), duration and
    outcome, at INFO; an exception is logged and raised again."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        session_id = kwargs.get("session_id", "")
        try:
            result = func(*args, **kwargs)
        except Exception:
            _log.exception("%s failed", func.__qualname__,
                           extra={"session_id": session_id,
                                  "duration": time.perf_counter() - started})
            raise
        _log.info("%s finished", func.__qualname__,
                  extra={"session_id": session_id, "duration": time.perf_counter() - started})
        return result

    return wrapper  # type: ignore[return-value]


def log_and_time(func: F) -> F:
    """The original's older name of [`log_and_measure`]."""
    return log_and_measure(func)


def track_metrics(func: F) -> F:
    """The original's older name of [`log_and_measure`]."""
    return log_and_measure(func)


__all__ = ["log_and_measure", "log_and_time", "track_metrics"]
