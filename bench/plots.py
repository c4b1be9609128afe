"""The PNG plots linked from bench/README.md, one per table (matplotlib, the ``bench`` extra).

Each function takes the figures a scenario produced and writes one PNG; without matplotlib it
returns None and the harness says so (the tables are still written).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

PLOTS_DIR = Path(__file__).resolve().parent / "plots"


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_scale(rows: Sequence[dict[str, Any]], title: str, path: Path) -> Path | None:
    """p50 per request path (left) and usage/audit seconds (right) against stored videos, one
    line per store, log x axis."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    stores = sorted({r["store"] for r in rows})
    styles = {"sqlite": "-", "postgres": "--"}
    for store in stores:
        mine = sorted((r for r in rows if r["store"] == store), key=lambda r: r["videos"])
        xs = [r["videos"] for r in mine]
        for name in ("status", "list", "list_deep", "create", "cache_hit"):
            ys = [(r["paths"].get(name) or {}).get("p50_ms") for r in mine]
            if any(y is not None for y in ys):
                left.plot(xs, ys, styles.get(store, "-"), marker="o", label=f"{store} {name}")
        for name in ("usage_team_month", "usage_team_all", "audit_team_month", "audit"):
            ys = [r["admin_seconds"].get(name) for r in mine]
            if any(y is not None for y in ys):
                right.plot(xs, ys, styles.get(store, "-"), marker="o", label=f"{store} {name}")
    left.set(xscale="log", yscale="log", xlabel="stored videos", ylabel="p50 ms (wrk -c16)")
    left.set_title("requests")
    right.set(xscale="log", yscale="log", xlabel="stored videos", ylabel="seconds", title="admin")
    right.axhline(1.0, color="red", linewidth=0.8, linestyle=":", label="1 s target")
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_series(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    path: Path,
    hline: tuple[float, str] | None = None,
    logy: bool = False,
) -> Path | None:
    """Named (x, y) lines on one axis; ``hline`` = (value, label) for a target."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, axis = plt.subplots(figsize=(8, 4.5))
    for name, (xs, ys) in series.items():
        axis.plot(list(xs), list(ys), marker="o" if len(xs) <= 40 else None, label=name)
    if hline is not None:
        axis.axhline(hline[0], color="red", linewidth=0.8, linestyle=":", label=hline[1])
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logy:
        axis.set_yscale("log")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_bars(
    groups: dict[str, dict[str, float]],
    *,
    ylabel: str,
    title: str,
    path: Path,
    logy: bool = False,
) -> Path | None:
    """Grouped bars: ``{group: {series: value}}`` (say scenario -> target -> ratio)."""
    plt = _pyplot()
    if plt is None:
        return None
    names = list(groups)
    series = sorted({s for g in groups.values() for s in g})
    fig, axis = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(series))
    for i, s in enumerate(series):
        xs = [n + i * width for n in range(len(names))]
        axis.bar(xs, [groups[g].get(s, 0.0) for g in names], width, label=s)
    axis.set_xticks([n + width * (len(series) - 1) / 2 for n in range(len(names))])
    axis.set_xticklabels(names, fontsize=8)
    axis.set(ylabel=ylabel, title=title)
    if logy:
        axis.set_yscale("log")
        axis.axhline(1.0, color="black", linewidth=0.6)
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
