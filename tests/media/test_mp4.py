"""The structural MP4 check and image magic: table-driven over good and hostile bytes."""

from __future__ import annotations

import struct

import pytest

from gateway.media.images import image_type
from gateway.media.mp4 import Mp4Check, NotMp4, check_mp4
from gateway.sandbox.media import video_bytes_for
from gateway.sandbox.render import RenderSpec, render_mp4, still_png

SPEC = RenderSpec(width=32, height=32, fps=4, seconds=1, colour=(200, 40, 40))


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


FTYP = box(b"ftyp", b"isom\0\0\0\0isom")
MOOV = box(b"moov", box(b"mvhd", b"\0" * 100))
GOOD = FTYP + MOOV + box(b"mdat", b"frames")
LARGE_MDAT = struct.pack(">I4sQ", 1, b"mdat", 16 + 6) + b"frames"


@pytest.mark.parametrize(
    "data",
    [
        GOOD,
        FTYP + box(b"mdat", b"x") + MOOV,  # moov at the end (not "fast start")
        FTYP + MOOV + LARGE_MDAT,  # 64-bit box size
        FTYP + MOOV + struct.pack(">I4s", 0, b"mdat") + b"to the end",  # size 0: to the end
        video_bytes_for(render_mp4(SPEC), b"sandbox", 300_000),
    ],
)
def test_well_formed_files_pass_in_any_chunking(data: bytes) -> None:
    check_mp4(data)
    for size in (1, 7, 4096):
        check = Mp4Check()
        for at in range(0, len(data), size):
            check.feed(data[at : at + size])
        check.finish()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "too short"),
        (b"<!doctype html><script>alert(1)</script>", "ftyp"),
        (b'{"error": "nope"}', "ftyp"),
        (FTYP + box(b"mdat", b"frames"), "no moov"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"junk", "padded"),
        (FTYP + struct.pack(">I4s", 4, b"moov"), "impossible size"),
        (FTYP + box(b"HTML", b"x") + MOOV, "unexpected top-level box"),
        (MOOV + FTYP, "ftyp"),
    ],
)
def test_hostile_bytes_fail(data: bytes, why: str) -> None:
    with pytest.raises(NotMp4, match=why):
        check_mp4(data)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (still_png(SPEC, 1), "image/png"),
        (b"\xff\xd8\xff\xe0\0\x10JFIF", "image/jpeg"),
        (b"RIFF\x10\0\0\0WEBPVP8 ", "image/webp"),
        (b"RIFF\x10\0\0\0WAVEfmt ", None),
        (b"<svg onload=alert(1)>", None),
        (b"GIF89a", None),
        (b"", None),
    ],
)
def test_image_magic(head: bytes, kind: str | None) -> None:
    assert image_type(head) == kind
