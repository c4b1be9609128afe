"""Server-rendered charts: numbers in, small view objects out that the templates draw as SVG
(no chart library, no script). Shares are clamped for drawing; labels keep the real numbers."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.job_stats import usage_level, usage_share
from gateway.domain.money import format_usd
from gateway.services.overview import Spend

WIDTH = 200  # the SVG viewBox width bars are drawn in


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    text: str  # the value, with its unit
    width: float  # 0..WIDTH
    level: str  # ok | warn | over | none (no limit)


def spend_bar(spend: Spend, window: str, largest: int) -> Bar:
    """One scope's spend in a window: against its limit when it has one, otherwise against
    the largest spend shown (so unlimited teams still compare)."""
    line = spend.day if window == "day" else spend.month
    used = line.spent + line.reserved
    share = usage_share(used, line.limit)
    if share is None:
        text = f"{format_usd(used)} (no {window} budget)"
        scale = used / largest if largest else 0.0
        return Bar(spend.name, text, _width(scale), "none")
    text = f"{format_usd(used)} of {format_usd(line.limit or 0)} ({share * 100:.0f} %)"
    return Bar(spend.name, text, _width(share), usage_level(share))


def count_bars(counts: dict[str, int], order: tuple[str, ...] = ()) -> list[Bar]:
    """Bars for counts (jobs by state, cache outcomes), longest = full width."""
    keys = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
    largest = max(counts.values(), default=0)
    return [
        Bar(
            key.replace("_", " "),
            f"{counts[key]} job{'' if counts[key] == 1 else 's'}",
            _width(counts[key] / largest if largest else 0),
            "none",
        )
        for key in keys
    ]


def _width(share: float) -> float:
    return round(max(0.0, min(1.0, share)) * WIDTH, 1)


@dataclass(frozen=True, slots=True)
class Column:
    x: float
    height: float  # all jobs created that hour
    failed_height: float
    label: str  # for people: "14:00 UTC: 12 jobs, 1 failed"


COLUMNS_HEIGHT = 60


def hourly_columns(buckets: list[tuple[int, int]], end_hour: int) -> list[Column]:
    """One column per hour (``end_hour`` is the UTC hour of the last), failures drawn over it."""
    tallest = max((created for created, _ in buckets), default=0) or 1
    step = WIDTH / max(1, len(buckets))
    columns = []
    for index, (created, failed) in enumerate(buckets):
        hour = (end_hour - (len(buckets) - 1 - index)) % 24
        columns.append(
            Column(
                x=round(index * step, 1),
                height=round(created / tallest * COLUMNS_HEIGHT, 1),
                failed_height=round(failed / tallest * COLUMNS_HEIGHT, 1),
                label=f"{hour:02d}:00 UTC: {created} job{'' if created == 1 else 's'}, {failed} failed",
            )
        )
    return columns
