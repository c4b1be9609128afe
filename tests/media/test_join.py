"""Joining segments by stream copy: timestamps rebased, sound kept, every frame in order; what
cannot be joined without re-encoding is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.media.join import NotJoinable, join_segments
from gateway.media.probe import probe_file
from gateway.sandbox import RenderSpec, render_mp4
from tests.video_files import decoded_counters

COLOUR = (0x70, 0xB0, 0x30)


def segment(tmp_path: Path, index: int, start: int, **changes: object) -> str:
    spec = RenderSpec(
        **{
            "width": 64,
            "height": 36,
            "fps": 8,
            "seconds": 3,
            "colour": COLOUR,
            "start_frame": start,
            "audio": True,
            **changes,
        }
    )  # type: ignore[arg-type]
    path = tmp_path / f"s{index}.mp4"
    path.write_bytes(render_mp4(spec))
    return str(path)


def test_three_segments_join_into_one_video(tmp_path: Path) -> None:
    paths = [segment(tmp_path, i, i * 23) for i in range(3)]
    output = str(tmp_path / "joined.mp4")
    assert join_segments(paths, output) == pytest.approx(9.0)
    facts = probe_file(output)
    assert (facts.duration_ms, facts.frames, facts.has_audio) == (9000, 72, True)
    counters = decoded_counters(Path(output).read_bytes())
    assert counters == [*range(0, 24), *range(23, 47), *range(46, 70)]


@pytest.mark.parametrize(
    "changes", [{"width": 96, "height": 54}, {"audio": False}], ids=["frame-size", "no-audio"]
)
def test_differently_encoded_segments_are_refused(
    tmp_path: Path, changes: dict[str, object]
) -> None:
    paths = [segment(tmp_path, 0, 0), segment(tmp_path, 1, 23, **changes)]
    with pytest.raises(NotJoinable, match="segment 2"):
        join_segments(paths, str(tmp_path / "joined.mp4"))


def test_a_broken_segment_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(64))
    with pytest.raises(NotJoinable):
        join_segments([segment(tmp_path, 0, 0), str(broken)], str(tmp_path / "joined.mp4"))
    with pytest.raises(NotJoinable):
        join_segments([], str(tmp_path / "none.mp4"))
