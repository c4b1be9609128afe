"""Media costs: how long the sandbox takes to render a second of video, and how long the gateway
takes to join, probe and check a 60-second chained video (4 x 15 s segments, stream copy).

``python -m bench.media`` prints a table and writes ``bench/RESULTS-media.md``. Every render is
cold (the render cache is cleared first); each figure is the median of ``--runs`` runs. The
machine is described like the other benchmarks so results compare across machines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.machine import describe_machine
from gateway.media.join import join_segments
from gateway.media.probe import probe_file
from gateway.sandbox.render import RenderSpec, frame_size, render_mp4

RESULTS = Path(__file__).with_name("RESULTS-media.md")
COLOUR = (0x30, 0xB0, 0x70)


def _median_seconds(action: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _spec(
    seconds: int, *, audio: bool, fps: int = 24, short_side: int = 90, start: int = 0
) -> RenderSpec:
    width, height = frame_size("16:9", short_side)
    return RenderSpec(width, height, fps, seconds, COLOUR, start, audio)


def _cold_render(spec: RenderSpec) -> bytes:
    render_mp4.cache_clear()
    return render_mp4(spec)


def measure_renders(runs: int) -> list[tuple[str, float]]:
    """Seconds of rendering per second of video, for the default and a larger frame size."""
    rows = []
    for label, spec in [
        ("160x90, 24 fps, 15 s, no audio", _spec(15, audio=False)),
        ("160x90, 24 fps, 15 s, AAC audio", _spec(15, audio=True)),
        ("320x180, 24 fps, 15 s, AAC audio", _spec(15, audio=True, short_side=180)),
        ("160x90, 8 fps, 15 s (the chain tests)", _spec(15, audio=False, fps=8)),
    ]:
        seconds = _median_seconds(lambda spec=spec: _cold_render(spec), runs)  # type: ignore[misc]
        rows.append((label, seconds / spec.seconds))
    return rows


def measure_join(runs: int) -> tuple[float, float, int]:
    """(join seconds, probe seconds, joined duration in ms) for 4 x 15 s with audio."""
    with tempfile.TemporaryDirectory(prefix="bench-media-") as folder:
        paths = []
        for index in range(4):
            path = Path(folder) / f"segment-{index}.mp4"
            path.write_bytes(render_mp4(_spec(15, audio=True, start=index * 359)))
            paths.append(str(path))
        output = str(Path(folder) / "joined.mp4")
        join = _median_seconds(lambda: join_segments(paths, output), runs)
        probe = _median_seconds(lambda: probe_file(output), runs)
        return join, probe, probe_file(output).duration_ms


def report(renders: list[tuple[str, float]], join: tuple[float, float, int]) -> str:
    machine = describe_machine()
    lines = [
        "# Media benchmark (`python -m bench.media`)",
        "",
        f"Machine: {machine.line()}; commit {machine.commit}; load average"
        f" {os.getloadavg()[0]:.1f} (a shared machine: figures grow with load).",
        "",
        "## Sandbox render time per second of video (cold, H.264 ultrafast, 1 thread)",
        "",
        "| video | render s per video s |",
        "|---|---|",
        *(f"| {label} | {per_second:.4f} |" for label, per_second in renders),
        "",
        "## Joining a 60 s chained video (4 x 15 s, 160x90 H.264 + AAC, stream copy)",
        "",
        "| step | seconds |",
        "|---|---|",
        f"| join (remux) | {join[0]:.3f} |",
        f"| probe (decode end to end) | {join[1]:.3f} |",
        f"| joined duration | {join[2] / 1000:.3f} s |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    text = report(measure_renders(args.runs), measure_join(args.runs))
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
