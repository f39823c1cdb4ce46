"""`vector_service.decorators`, as in the original: `log_and_measure` (and its two older
names) logs each call's start and end with its `session_id`, timestamp, latency and result
size, in the original's messages and `extra` fields, so log formatters written for it keep
working. The server measures every operation in Prometheus; these log the caller's side."""

import functools
import inspect
import logging
import time
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def _result_size(result: Any) -> int:
    try:
        return len(result)
    except Exception:
        return 0


def log_and_measure(func: F) -> F:
    """Log `"<qualname> start"`, then `"<qualname> end"` (or `"<qualname> error"` with the
    exception, which is raised again) on the logger of `func`'s module, at INFO, each with
    `extra` `session_id` (the call's keyword), `timestamp`, and at the end `latency` and
    `result_size`. Works for coroutine functions too."""
    logger = logging.getLogger(func.__module__)
    name = func.__qualname__

    def start(session_id: Any) -> float:
        now = time.time()
        logger.info("%s start", name, extra={"session_id": session_id, "timestamp": now})
        return now

    def end(started: float, session_id: Any, result: Any = None, error: bool = False) -> None:
        now = time.time()
        extra = {"session_id": session_id, "timestamp": now, "latency": now - started,
                 "result_size": 0 if error else _result_size(result)}
        if error:
            logger.exception("%s error", name, extra=extra)
        else:
            logger.info("%s end", name, extra=extra)

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def awaiting(*args: Any, **kwargs: Any) -> Any:
            session_id = kwargs.get("session_id", "")
            started = start(session_id)
            try:
                result = await func(*args, **kwargs)
            except Exception:
                end(started, session_id, error=True)
                raise
            end(started, session_id, result)
            return result

        return awaiting  # type: ignore[return-value]

    @functools.wraps(func)
    def calling(*args: Any, **kwargs: Any) -> Any:
        session_id = kwargs.get("session_id", "")
        started = start(session_id)
        try:
            result = func(*args, **kwargs)
        except Exception:
            end(started, session_id, error=True)
            raise
        end(started, session_id, result)
        return result

    return calling  # type: ignore[return-value]


def log_and_time(func: F) -> F:
    """The original's older name of [`log_and_measure`]."""
    return log_and_measure(func)


def track_metrics(func: F) -> F:
    """The original's older name of [`log_and_measure`]."""
    return log_and_measure(func)


__all__ = ["log_and_measure", "log_and_time", "track_metrics"]
