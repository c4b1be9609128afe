"""Joining a chained video's segments into one MP4 by remuxing: stream copy, no re-encode.

Each segment's packets are copied in order with their timestamps moved by where the previous
segments ended (the video's end, so each segment's sound starts exactly with its pictures and
the tracks stay in sync). AAC segments begin with encoder priming packets whose moved timestamps
would overlap the previous segment's tail; those few packets (a few milliseconds) are dropped
so timestamps stay monotonic, which is the only loss. Segments whose codec parameters differ
(frame size, pixel format, SPS/PPS, sample rate) cannot share one track by stream copy and are
refused with ``NotJoinable`` rather than written as a broken file. Blocking (FFmpeg): run it
through ``asyncio.to_thread``.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import av


class NotJoinable(Exception):
    """The segments cannot be joined by stream copy (or one of them does not open)."""


def join_segments(paths: Sequence[str], output: str) -> float:
    """Write the segments at ``paths`` end to end into ``output``; the joined video's length
    in seconds (the sum of the segments' video lengths)."""
    if not paths:
        raise NotJoinable("there are no segments to join")
    reference: tuple[Any, ...] | None = None
    offset = Fraction(0)
    last_dts: dict[int, int] = {}
    try:
        with av.open(output, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            targets: dict[str, Any] = {}
            for index, path in enumerate(paths):
                with av.open(path) as source:
                    streams = _streams(source, index)
                    signature = tuple(_signature(stream) for stream in streams)
                    if reference is None:
                        reference = signature
                        for stream in streams:
                            targets[stream.type] = out.add_stream_from_template(stream)
                    elif signature != reference:
                        raise NotJoinable(f"segment {index + 1} was encoded differently")
                    offset = _copy(source, streams, targets, offset, last_dts, out)
    except av.FFmpegError as exc:
        raise NotJoinable(f"a segment could not be remuxed: {exc}") from exc
    return float(offset)


def _streams(source: Any, index: int) -> list[Any]:
    if not source.streams.video:
        raise NotJoinable(f"segment {index + 1} has no video")
    return [source.streams.video[0], *source.streams.audio[:1]]


def _signature(stream: Any) -> tuple[Any, ...]:
    """What must be equal for two segments' packets to share one output track."""
    codec = stream.codec_context
    if stream.type == "video":
        return ("video", codec.name, codec.width, codec.height, codec.pix_fmt, codec.extradata)
    return ("audio", codec.name, codec.sample_rate, codec.channels, codec.extradata)


def _copy(
    source: Any,
    streams: list[Any],
    targets: dict[str, Any],
    offset: Fraction,
    last_dts: dict[int, int],
    out: Any,
) -> Fraction:
    """Copy one segment's packets shifted by ``offset``; where its video ends."""
    end = offset
    for packet in source.demux(streams):
        if packet.dts is None or packet.pts is None:
            continue  # the demuxer's flush packet
        time_base = packet.time_base
        shift = round(offset / time_base)
        packet.pts += shift
        packet.dts += shift
        kind = packet.stream.type
        if kind == "video":
            end = max(end, (packet.pts + packet.duration) * time_base)
        target = targets[kind]
        previous = last_dts.get(target.index)
        if previous is not None and packet.dts <= previous:
            if kind != "video":
                continue  # AAC priming overlapping the previous segment's tail
            # A stream with B-frames starts decoding a frame early: nudge by one tick, keep it.
            packet.dts = previous + 1
            packet.pts = max(packet.pts, packet.dts)
        last_dts[target.index] = packet.dts
        packet.stream = target
        out.mux(packet)
    return end
