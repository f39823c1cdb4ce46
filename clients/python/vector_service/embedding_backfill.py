"""`vector_service.embedding_backfill`, as in the original: `EmbeddingBackfill`."""

import time
from typing import Any, Dict, List, Optional

from ._operation import TUNING, _ignore, _in_thread, _Operation, _body
from .exceptions import BackfillError, ServiceTimeoutError, error_for


class EmbeddingBackfill(_Operation):
    """`EmbeddingBackfill.run` (`POST /v1/backfill`, a job the client waits for). `batch_size`
    is the default of its runs, as in the original (also as its first positional argument);
    `backend` names a local vector index, which the server chooses: ignored."""

    def __init__(self, url: Any = None, *, batch_size: Optional[int] = None,
                 backend: Optional[str] = None, **kwargs: Any) -> None:
        if isinstance(url, int) and not isinstance(url, bool):
            url, batch_size = None, url
        if backend is not None:
            kwargs["backend"] = backend
        super().__init__(url, **kwargs)
        self.batch_size = batch_size

    def run(self, *, session_id: str = "", batch_size: Optional[int] = None,
            dbs: Optional[List[str]] = None, poll_interval: float = 0.25,
            wait_timeout: Optional[float] = None, **ignored: Any) -> Dict[str, Any]:
        """Backfill the missing embeddings of every embeddable database (or `dbs`) and wait
        for it: the report `{session_id, status, databases}`. Raises `BackfillError` (with
        the report) when a database failed, `ConflictError` when one runs already. After
        `wait_timeout` seconds the job is cancelled and `ServiceTimeoutError` raised."""
        _ignore("EmbeddingBackfill.run", ignored, TUNING)
        job = self.client.request("POST", "/v1/backfill", _body(
            session_id=session_id,
            batch_size=self.batch_size if batch_size is None else batch_size,
            dbs=dbs or None))
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

    async def run_async(self, **kwargs: Any) -> Dict[str, Any]:
        """[`run`] without blocking the event loop."""
        return await _in_thread(self.run, **kwargs)


__all__ = ["EmbeddingBackfill"]
