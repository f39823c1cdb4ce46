"""`vector_service.embedding_backfill`, as in the original: `EmbeddingBackfill`."""

import importlib
import inspect
import logging
import time
from typing import Any, Dict, List, Optional

from ._operation import TUNING, _ignore, _in_thread, _Operation, _body
from .decorators import log_and_measure
from .exceptions import BackfillError, ServiceTimeoutError, error_for

_log = logging.getLogger(__name__)

# The original's modules that define its database classes: imported (best effort) before its
# run looked for the classes that mix in `EmbeddableDBMixin`, as this run does.
_KNOWN_DB_MODULES = ("bot_database", "task_handoff_bot", "error_bot", "information_db",
                     "chatgpt_enhancement_bot", "research_aggregator_bot")
# The original's batch size for a database class's own `backfill_embeddings`.
_LOCAL_BATCH_SIZE = 100


class EmbeddingBackfill(_Operation):
    """`EmbeddingBackfill.run`: first, as the original, every database class of this process
    that mixes in `EmbeddableDBMixin` backfills its records (which sends them to the server);
    then the server's backfill job (`POST /v1/backfill`), which the client waits for.
    `batch_size` is the default of its runs (also as the first positional argument); `backend`
    is handed to the database classes as `vector_backend`, as the original did."""

    def __init__(self, url: Any = None, *, batch_size: Optional[int] = None,
                 backend: Optional[str] = None, **kwargs: Any) -> None:
        if isinstance(url, int) and not isinstance(url, bool):
            url, batch_size = None, url
        super().__init__(url, **kwargs)
        self.batch_size = batch_size
        self.backend = backend

    def _load_known_dbs(self) -> List[type]:
        """The classes that mix in `EmbeddableDBMixin` directly, after the original's database
        modules are imported where they exist (as the original's method of this name)."""
        for name in _KNOWN_DB_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # a module this code base does not have
                pass
        from .embeddable_db_mixin import EmbeddableDBMixin
        return [cls for cls in EmbeddableDBMixin.__subclasses__()
                if hasattr(cls, "backfill_embeddings")]

    @log_and_measure
    def _process_db(self, db: Any, *, batch_size: int, session_id: str = "") -> None:
        """One database object's own backfill, with `batch_size` where it takes one."""
        parameters = inspect.signature(db.backfill_embeddings).parameters
        if "batch_size" in parameters or any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            db.backfill_embeddings(batch_size=batch_size)
        else:
            db.backfill_embeddings()

    def _backfill_classes(self, batch_size: int, backend: Optional[str],
                          session_id: str) -> List[Dict[str, Any]]:
        """Each known database class, made as the original made it (`vector_backend=`, else
        no argument), backfills itself; one that cannot be made or fails is logged and the
        others go on. What happened to each, in order."""
        classes = self._load_known_dbs()
        done: List[Dict[str, Any]] = []
        for index, cls in enumerate(classes, 1):
            entry: Dict[str, Any] = {"class": cls.__name__}
            try:
                try:
                    db = cls(vector_backend=backend or "annoy")
                except Exception:
                    db = cls()
            except Exception as error:
                _log.warning("Skipping %s: it cannot be constructed: %s", cls.__name__, error,
                             extra={"session_id": session_id})
                done.append({**entry, "status": "skipped", "error": str(error)})
                continue
            _log.info("Backfilling %s (%d/%d)", cls.__name__, index, len(classes),
                      extra={"session_id": session_id})
            try:
                self._process_db(db, batch_size=batch_size, session_id=session_id)
            except Exception as error:
                done.append({**entry, "status": "failed", "error": str(error)})
            else:
                done.append({**entry, "status": "backfilled"})
        return done

    @log_and_measure
    def run(self, *, session_id: str = "", batch_size: Optional[int] = None,
            backend: Optional[str] = None, dbs: Optional[List[str]] = None,
            poll_interval: float = 0.25, wait_timeout: Optional[float] = None,
            **ignored: Any) -> Dict[str, Any]:
        """Backfill the missing embeddings of every embeddable database and wait for it: the
        server's report `{session_id, status, databases}` with `classes`, what each database
        class of this process did. With `dbs`, only those server databases (no classes).
        Raises `BackfillError` (with the report) when a server database failed,
        `ConflictError` when a job runs already. After `wait_timeout` seconds the job is
        cancelled and `ServiceTimeoutError` raised."""
        _ignore("EmbeddingBackfill.run", ignored, TUNING)
        size = self.batch_size if batch_size is None else batch_size
        classes = [] if dbs else self._backfill_classes(
            _LOCAL_BATCH_SIZE if size is None else size, backend or self.backend, session_id)
        report = self._run_job(session_id=session_id, batch_size=size, dbs=dbs,
                               poll_interval=poll_interval, wait_timeout=wait_timeout)
        report["classes"] = classes
        return report

    def _run_job(self, *, session_id: str = "", batch_size: Optional[int] = None,
                 dbs: Optional[List[str]] = None, poll_interval: float = 0.25,
                 wait_timeout: Optional[float] = None) -> Dict[str, Any]:
        """The server's backfill job, started and waited for: its report."""
        job = self.client.request("POST", "/v1/backfill", _body(
            session_id=session_id, batch_size=batch_size, dbs=dbs or None))
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
