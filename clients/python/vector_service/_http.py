"""One HTTP exchange with the server: JSON in, JSON out, errors as the module's exceptions.

Standard library only (`urllib`). Every request has a timeout; nothing is retried here (the
server retries a rate-limited backend once itself, as the original module did).
"""

import json
import os
import socket
import sys
import urllib.error
import urllib.request
from typing import Any, Dict, Optional

from .exceptions import ServiceTimeoutError, ServiceUnavailableError, VectorServiceError, error_for

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 30.0


class Client:
    """Where the server is and how to authenticate.

    `url` defaults to `$VECTOR_SERVICE_URL`, else `http://127.0.0.1:8080`; `api_key` to
    `$VECTOR_SERVICE_API_KEY` (none: a server without a tenants file, on this machine);
    `timeout` (seconds, per request) to `$VECTOR_SERVICE_TIMEOUT`, else 30.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> None:
        self.url = (url or os.environ.get("VECTOR_SERVICE_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("VECTOR_SERVICE_API_KEY")
        if timeout is None:
            timeout = float(os.environ.get("VECTOR_SERVICE_TIMEOUT", DEFAULT_TIMEOUT))
        self.timeout = timeout

    def request(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        """Send `body` as JSON to `path`; the answer's JSON, or the error's exception."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        for name, value in _trace_headers().items():
            request.add_header(name, value)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", "Bearer " + self.api_key)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _json(response.read(), response.status)
        except urllib.error.HTTPError as error:
            raise _from_answer(error) from None
        except (socket.timeout, TimeoutError) as error:
            raise ServiceTimeoutError(
                f"{method} {self.url}{path}: no answer within {self.timeout} s",
                kind="timeout",
            ) from error
        except urllib.error.URLError as error:
            if isinstance(error.reason, (socket.timeout, TimeoutError)):
                raise ServiceTimeoutError(
                    f"{method} {self.url}{path}: no answer within {self.timeout} s",
                    kind="timeout",
                ) from error
            raise ServiceUnavailableError(
                f"{method} {self.url}{path}: the server cannot be reached: {error.reason}",
                kind="unreachable",
            ) from error
        except (ConnectionError, OSError) as error:
            raise ServiceUnavailableError(
                f"{method} {self.url}{path}: the connection failed: {error}",
                kind="unreachable",
            ) from error


def _trace_headers() -> Dict[str, str]:
    """The caller's current trace context (`traceparent`, `tracestate`, `baggage`, as the
    process's OpenTelemetry propagator writes them), so the server's spans join the caller's
    trace. Nothing when the process has not imported OpenTelemetry: then it traces nothing
    to forward, and this costs one dictionary lookup."""
    if "opentelemetry" not in sys.modules:
        return {}
    try:
        from opentelemetry import propagate

        carrier: Dict[str, str] = {}
        propagate.inject(carrier)
        return carrier
    except Exception:  # an API too old or broken: the call goes on without the trace
        return {}


def _json(raw: bytes, status: int) -> Any:
    try:
        return json.loads(raw)
    except ValueError as error:
        raise VectorServiceError(
            f"the server answered {status} with a body that is not JSON", status=status
        ) from error


def _from_answer(error: urllib.error.HTTPError) -> VectorServiceError:
    """The exception for an error answer `{"error": {"kind", "message"}}`."""
    retry_after = error.headers.get("Retry-After") if error.headers else None
    try:
        retry = float(retry_after) if retry_after is not None else None
    except ValueError:
        retry = None
    try:
        detail = json.loads(error.read())["error"]
        kind, message = str(detail["kind"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        kind, message = "failed", f"the server answered {error.code} {error.reason}"
    return error_for(kind, message, error.code, retry)
