"""Real, small, playable videos for the sandbox: H.264 (yuv420p) in MP4 with the ``moov`` box
first, an optional AAC tone, and PNG stills of the first and last frames.

Every frame is a flat colour with a 16-bit frame counter drawn as black/white cells across its
top quarter, so a test can read which frame it is looking at after lossy coding
(``read_counter``). The encoder runs single-threaded with fixed parameters and the muxer in
bitexact mode, so one ``RenderSpec`` always gives the same bytes; renders are cached by spec.
Blocking (FFmpeg): the sandbox calls ``render_mp4`` through ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from functools import lru_cache

import av

COUNTER_BITS = 16
PALETTE_LEVELS = (0x30, 0x70, 0xB0, 0xF0)  # 4 levels a channel: 64 colours, renders cache well
AUDIO_RATE = 16_000
AUDIO_FRAME = 1024
RATIO_SHAPES: dict[str, tuple[int, int]] = {
    "16:9": (16, 9),
    "9:16": (9, 16),
    "1:1": (1, 1),
    "4:3": (4, 3),
    "3:4": (3, 4),
    "21:9": (21, 9),
}
VIDEO_CODEC = "libx264"
X264_OPTIONS = {"preset": "ultrafast", "crf": "30", "x264-params": "threads=1:sliced-threads=0"}


@dataclass(frozen=True, slots=True)
class RenderSpec:
    """Everything the rendered bytes depend on (and nothing else): the render cache key."""

    width: int
    height: int
    fps: int
    seconds: int
    colour: tuple[int, int, int]
    start_frame: int = 0
    audio: bool = False

    @property
    def frames(self) -> int:
        return self.fps * self.seconds

    @property
    def last_counter(self) -> int:
        """The counter drawn on the final frame (a continuation starts from it)."""
        return self.start_frame + self.frames - 1


def frame_size(ratio: str, short_side: int) -> tuple[int, int]:
    """``(width, height)`` for ``ratio`` with the shorter side ``short_side``, both even (yuv420p)."""
    w, h = RATIO_SHAPES.get(ratio, (16, 9))
    scale = short_side / min(w, h)
    return _even(w * scale), _even(h * scale)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def colour_for(prompt: str, seed: int) -> tuple[int, int, int]:
    """A colour from the prompt and seed, drawn from a 64-colour palette."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    r, g, b = (PALETTE_LEVELS[byte % len(PALETTE_LEVELS)] for byte in digest[:3])
    return r, g, b


def frame_rgb(spec: RenderSpec, counter: int) -> bytes:
    """The rgb24 pixels of the frame showing ``counter``."""
    cells = [min(x * COUNTER_BITS // spec.width, COUNTER_BITS - 1) for x in range(spec.width)]
    row = b"".join(
        b"\xff\xff\xff" if (counter >> (COUNTER_BITS - 1 - cell)) & 1 else b"\x00\x00\x00"
        for cell in cells
    )
    band = spec.height // 4
    return row * band + bytes(spec.colour) * (spec.width * (spec.height - band))


def read_counter(rgb: bytes, width: int, height: int) -> int:
    """The counter drawn on a decoded rgb24 frame (cells thresholded at mid-grey)."""
    y = height // 8
    value = 0
    for cell in range(COUNTER_BITS):
        x = (2 * cell + 1) * width // (2 * COUNTER_BITS)
        offset = (y * width + x) * 3
        value = (value << 1) | (1 if sum(rgb[offset : offset + 3]) > 3 * 128 else 0)
    return value


@lru_cache(maxsize=128)
def render_mp4(spec: RenderSpec) -> bytes:
    """The MP4 for ``spec`` (cached). FFmpeg's faststart pass rereads the file, so it is
    written to a temporary file rather than memory."""
    fd, path = tempfile.mkstemp(prefix="sandbox-", suffix=".mp4")
    os.close(fd)
    try:
        _encode(spec, path)
        with open(path, "rb") as file:
            return file.read()
    finally:
        os.unlink(path)


def _encode(spec: RenderSpec, path: str) -> None:
    options = {"movflags": "+faststart", "fflags": "+bitexact"}
    with av.open(path, "w", format="mp4", options=options) as out:
        video = out.add_stream(VIDEO_CODEC, rate=spec.fps)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        video.codec_context.thread_count = 1
        video.codec_context.options = dict(X264_OPTIONS)
        audio = _tone_stream(out) if spec.audio else None
        for second in range(spec.seconds):  # interleaved a second at a time
            for index in range(second * spec.fps, (second + 1) * spec.fps):
                frame = _video_frame(spec, frame_rgb(spec, spec.start_frame + index))
                frame.pts = index
                out.mux(video.encode(frame))
            if audio is not None:
                _encode_tone_second(out, audio, spec, second)
        out.mux(video.encode(None))
        if audio is not None:
            out.mux(audio.encode(None))


def _video_frame(spec: RenderSpec, rgb: bytes) -> av.VideoFrame:
    """An rgb24 frame from tightly packed pixels (FFmpeg may pad each line)."""
    frame = av.VideoFrame(spec.width, spec.height, "rgb24")
    plane = frame.planes[0]
    row = spec.width * 3
    if plane.line_size != row:
        pad = bytes(plane.line_size - row)
        rgb = b"".join(rgb[y * row : (y + 1) * row] + pad for y in range(spec.height))
    plane.update(rgb)
    return frame


def _tone_stream(out: av.container.OutputContainer) -> av.AudioStream:
    audio = out.add_stream("aac", rate=AUDIO_RATE)
    assert isinstance(audio, av.AudioStream)
    audio.layout = "mono"
    audio.codec_context.thread_count = 1
    return audio


def _encode_tone_second(
    out: av.container.OutputContainer, audio: av.AudioStream, spec: RenderSpec, second: int
) -> None:
    """One second of a quiet sine tone whose pitch follows the colour; the phase continues
    across segments (``start_frame``) so a chained video's sound has no jump at a boundary."""
    wave = _tone(220 + spec.colour[0])  # a whole number of periods: one second repeats
    offset = spec.start_frame * AUDIO_RATE // spec.fps
    for pos in range(second * AUDIO_RATE, (second + 1) * AUDIO_RATE, AUDIO_FRAME):
        count = min(AUDIO_FRAME, (second + 1) * AUDIO_RATE - pos)
        first = (offset + pos) % AUDIO_RATE
        samples = (wave + wave)[4 * first : 4 * (first + count)]
        frame = av.AudioFrame(format="flt", layout="mono", samples=count)
        frame.planes[0].update(samples)
        frame.sample_rate = AUDIO_RATE
        frame.pts = pos
        out.mux(audio.encode(frame))


@lru_cache(maxsize=64)
def _tone(pitch: int) -> bytes:
    """One second of the tone as little-endian float32 samples."""
    return struct.pack(
        f"<{AUDIO_RATE}f",
        *(0.2 * math.sin(2 * math.pi * pitch * i / AUDIO_RATE) for i in range(AUDIO_RATE)),
    )


@lru_cache(maxsize=256)
def still_png(spec: RenderSpec, counter: int) -> bytes:
    """The exact frame showing ``counter`` as a PNG (the last frame, the thumbnail)."""
    rgb = frame_rgb(spec, counter)
    row = spec.width * 3
    raw = b"".join(b"\x00" + rgb[y * row : (y + 1) * row] for y in range(spec.height))
    header = struct.pack(">IIBBBBB", spec.width, spec.height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(raw, 6))
        + png_chunk(b"IEND", b"")
    )


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
