"""Reading videos in tests with PyAV: every frame's counter, stream facts, still pixels."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av

from gateway.sandbox import read_counter


def frame_rgb(frame: av.VideoFrame) -> bytes:
    """A decoded frame's rgb24 pixels without the line padding."""
    rgb = frame.reformat(format="rgb24")
    plane = rgb.planes[0]
    row = rgb.width * 3
    data = bytes(plane)
    return b"".join(
        data[y * plane.line_size : y * plane.line_size + row] for y in range(rgb.height)
    )


def decoded_counters(mp4: bytes) -> list[int]:
    """The frame counter of every frame, decoding the whole video (raises if it cannot)."""
    with av.open(io.BytesIO(mp4)) as container:
        return [
            read_counter(frame_rgb(frame), frame.width, frame.height)
            for frame in container.decode(video=0)
        ]


def audio_seconds(mp4: bytes) -> float:
    """How long the audio track lasts, decoding every audio frame (raises if it cannot)."""
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate


def png_counter(png: bytes) -> int:
    with av.open(io.BytesIO(png)) as container:
        frame = next(container.decode(video=0))
        return read_counter(frame_rgb(frame), frame.width, frame.height)


@dataclass(frozen=True)
class Streams:
    video_codec: str
    width: int
    height: int
    pix_fmt: str
    audio_codec: str | None
    seconds: float


def streams_of(mp4: bytes) -> Streams:
    with av.open(io.BytesIO(mp4)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        assert container.duration is not None
        return Streams(
            video_codec=video.codec_context.name,
            width=video.codec_context.width,
            height=video.codec_context.height,
            pix_fmt=str(video.codec_context.pix_fmt),
            audio_codec=audio.codec_context.name if audio is not None else None,
            seconds=container.duration / 1_000_000,
        )
