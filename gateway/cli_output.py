"""How every ``gateway`` listing prints: one aligned table with a header, or ``--json``.

Columns are two spaces apart; the first ``text_columns`` are left-aligned, the rest (amounts
and counts) right-aligned; no trailing spaces. ``--json`` prints what the admin API answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def print_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, text_columns: int | None = None
) -> None:
    """Print ``header`` and ``rows`` aligned (every column text when ``text_columns`` is None)."""
    left = len(header) if text_columns is None else text_columns
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        cells = [
            cell.ljust(width) if index < left else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def utc_time(seconds: int | float | None) -> str:
    """A Unix time as ``2026-11-27 03:04`` (UTC), or ``-``."""
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M")
