"""`vector_service.patch_logger`, as in the original: `PatchLogger`."""

from typing import Any, Dict, Optional, Sequence

from ._operation import TUNING, _ignore, _in_thread, _Operation, _body
from .decorators import log_and_measure


class PatchLogger(_Operation):
    """`PatchLogger.track_contributors` (`POST /v1/contributors`). The original's constructor
    keywords (`patch_db`, `vector_metrics`, `metrics_db`) name local databases: the server's
    tenant has its own, so they are ignored with a warning."""

    @log_and_measure
    def track_contributors(self, vector_ids: Sequence[str], result: bool, *, patch_id: str = "",
                           session_id: str = "", contribution: Optional[float] = None,
                           roi_tag: Optional[str] = None, **ignored: Any) -> Dict[str, Any]:
        """Record a patch's outcome against the `origin:id` vectors that contributed. Returns
        the server's answer (`status`, `written_to`, `rows`, `roi_tag`, `warnings`); raises
        when the outcome could not be written anywhere (the original lost it silently)."""
        _ignore("PatchLogger.track_contributors", ignored, TUNING)
        vector_ids = list(vector_ids)
        wrong = [v for v in vector_ids if not isinstance(v, str)]
        if wrong:
            # The original failed on the first `":" in vid` with a TypeError, before any write.
            raise TypeError(f"vector ids must be strings ('origin:id'), got {wrong[0]!r}")
        return self.client.request("POST", "/v1/contributors", _body(
            vector_ids=vector_ids, success=bool(result), patch_id=patch_id,
            session_id=session_id, contribution=contribution, roi_tag=roi_tag))

    async def track_contributors_async(self, vector_ids: Sequence[str], result: bool,
                                       **kwargs: Any) -> Dict[str, Any]:
        """[`track_contributors`] without blocking the event loop."""
        return await _in_thread(self.track_contributors, vector_ids, result, **kwargs)


__all__ = ["PatchLogger"]
