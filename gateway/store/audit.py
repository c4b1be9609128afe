"""The audit's and usage report's arithmetic, shared by every database adapter: recompute each
budget counter from the ledger and list every difference, plus money left reserved by finished
jobs; merge usage sums with dedupe savings. Pure: the adapters run the queries, hand rows in."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from gateway.store.base import UsageRow

CounterKey = tuple[str, str, str, str]  # scope, scope_id, window, period


def audit_problems(
    ledger_sums: Iterable[Any],
    counters: Iterable[Any],
    reserved_but_finished: Iterable[Any],
    settled_but_reserved: Iterable[Any],
    windows: tuple[str, ...] = ("total", "day", "month"),
) -> list[str]:
    """``ledger_sums``: (scope, scope_id, day, month, reserved, spent) sums of the ledger;
    ``counters``: (scope, scope_id, window, period, reserved, spent) rows of the counters;
    ``reserved_but_finished``: (job id, status); ``settled_but_reserved``: (job id, net).
    ``windows``: the counter windows the ledger rows given can recompute (a one-month slice of
    the ledger says nothing of the all-time ``total``)."""
    expected: dict[CounterKey, list[int]] = defaultdict(lambda: [0, 0])
    for scope, scope_id, day, month, reserved, spent in ledger_sums:
        for window, period in (("total", "total"), ("day", day), ("month", month)):
            if window not in windows:
                continue
            totals = expected[(scope, scope_id, window, period)]
            totals[0] += reserved
            totals[1] += spent
    actual = {(row[0], row[1], row[2], row[3]): [row[4], row[5]] for row in counters}
    problems: list[str] = []
    for where in sorted(set(expected) | set(actual)):
        want, have = expected.get(where, [0, 0]), actual.get(where, [0, 0])
        if want != have:
            problems.append(
                f"counter {'/'.join(where)}: reserved {have[0]} spent {have[1]},"
                f" ledger says reserved {want[0]} spent {want[1]}"
            )
    for job_id, status in reserved_but_finished:
        problems.append(f"job {job_id} is {status} but its money is still reserved")
    for job_id, net in settled_but_reserved:
        problems.append(f"job {job_id} is settled but {net} micro-USD stay reserved")
    return problems


def usage_rows(money: Iterable[Any], savings: dict[Any, tuple[int, int]]) -> list[UsageRow]:
    """Merge per-group ledger sums (group, spent, reserved, refunded, videos, seconds) with what
    dedupe saved per group ({group: (saved micro-USD, videos)}), ordered by group."""
    rows = {row[0]: UsageRow(str(row[0]), row[1], row[2], row[3], row[4], row[5]) for row in money}
    for name, (saved, count) in savings.items():
        base = rows.get(name, UsageRow(str(name), 0, 0, 0, 0, 0))
        rows[name] = replace(base, saved=saved, videos_saved=count)
    return [rows[name] for name in sorted(rows, key=str)]


def team_audit_windows(month: str | None) -> tuple[str, ...]:
    """The windows a team audit checks: all of them, or a month's day and month windows."""
    return ("day", "month") if month is not None else ("total", "day", "month")
