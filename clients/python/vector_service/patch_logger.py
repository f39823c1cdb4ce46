"""`vector_service.patch_logger`, as in the original: `PatchLogger`."""

from typing import Any, Dict, Optional, Sequence

from ._operation import _Operation, _body


class PatchLogger(_Operation):
    """`PatchLogger.track_contributors` (`POST /v1/contributors`)."""

    def track_contributors(self, vector_ids: Sequence[str], result: bool, *, patch_id: str = "",
                           session_id: str = "", contribution: Optional[float] = None,
                           roi_tag: Optional[str] = None) -> Dict[str, Any]:
        """Record a patch's outcome against the `origin:id` vectors that contributed. Returns
        the server's answer (`status`, `written_to`, `rows`, `roi_tag`, `warnings`); raises
        when the outcome could not be written anywhere (the original lost it silently)."""
        return self.client.request("POST", "/v1/contributors", _body(
            vector_ids=list(vector_ids), success=bool(result), patch_id=patch_id,
            session_id=session_id, contribution=contribution, roi_tag=roi_tag))


__all__ = ["PatchLogger"]
