"""What a video list reads: every job column except those a list never renders (signed links,
lease and cache bookkeeping), which are selected as NULL, so a page of 100 rows does not carry
100 signed URLs (the video and last-frame keys stay: lists show both). Shared by both
adapters, with the check of a page request; column names are constants, never input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

UNLISTED_JOB_COLUMNS: Final = frozenset(
    {
        "upstream_id",
        "upstream_video_url",
        "upstream_last_frame_url",
        "lease_owner",
        "cache_key",
    }
)


def check_page(limit: int, order: str = "desc") -> None:
    """Refuse a page request no adapter can answer (the API layer bounds both first)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")


def list_select(column_names: Sequence[str]) -> str:
    """``SELECT ... FROM jobs`` for a list, in ``column_names`` order."""
    columns = (f"NULL AS {c}" if c in UNLISTED_JOB_COLUMNS else c for c in column_names)
    return f"SELECT {', '.join(columns)} FROM jobs"  # noqa: S608 - constant column names
