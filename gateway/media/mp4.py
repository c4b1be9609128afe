"""A cheap structural check that bytes are an MP4 file, fed chunk by chunk while they stream.

Walks the top-level boxes (ISO/IEC 14496-12 section 4.2: a 32-bit size and a four-letter type,
size 1 = a 64-bit size follows, size 0 = "to the end of the file"): the first box must be
``ftyp``, a ``moov`` must be present, and the box sizes must add up to exactly the file's
length. An HTML page, a JSON error, a truncated download (no ``moov`` yet) or random bytes all
fail. It does not decode anything (that is ``probe.py``'s job); it only needs the box headers,
so it keeps a few bytes of state whatever the file size. Pure: no I/O.
"""

from __future__ import annotations

import struct
from typing import Final

_LARGE_SIZE: Final = 1
_TO_END: Final = 0
# Top-level boxes a well-formed MP4 may carry; anything else means these are not MP4 bytes.
TOP_LEVEL_BOXES: Final = frozenset(
    {
        b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"meta", b"moof",
        b"mfra", b"styp", b"sidx", b"ssix", b"prft", b"pdin", b"emsg", b"udta", b"junk",
        b"pnot", b"PICT",
    }
)  # fmt: skip


class NotMp4(ValueError):
    """The bytes are not a well-formed MP4 file; the message says why."""


class Mp4Check:
    """Feed every chunk in order, then call ``finish()``; both raise ``NotMp4`` on the first
    inconsistency, so a bad stream is refused before it is stored whole."""

    def __init__(self) -> None:
        self.size = 0  # bytes fed so far
        self.boxes: list[bytes] = []
        self._next_box = 0  # file offset of the next box header
        self._header = bytearray()  # a box header split across chunks
        self._to_end = False

    def feed(self, chunk: bytes) -> None:
        start = self.size
        self.size += len(chunk)
        if self._to_end:
            return
        while self._next_box < self.size:
            offset = self._next_box - start
            if offset < 0:  # the header began in an earlier chunk
                offset = 0
            need = 16 - len(self._header)
            self._header += chunk[offset : offset + need]
            if not self._box_header_complete():
                return
            self._enter_box()
            if self._to_end:
                return

    def _box_header_complete(self) -> bool:
        if len(self._header) < 8:
            return False
        (size,) = struct.unpack(">I", self._header[:4])
        return size != _LARGE_SIZE or len(self._header) >= 16

    def _enter_box(self) -> None:
        size, kind = struct.unpack(">I4s", self._header[:8])
        header_length = 8
        if size == _LARGE_SIZE:
            (size,) = struct.unpack(">Q", self._header[8:16])
            header_length = 16
        if not self.boxes and kind != b"ftyp":
            raise NotMp4("the file does not start with an ftyp box")
        if kind not in TOP_LEVEL_BOXES:
            raise NotMp4(f"unexpected top-level box {kind!r} at offset {self._next_box}")
        self.boxes.append(kind)
        self._header.clear()
        if size == _TO_END:
            self._to_end = True
            return
        if size < header_length:
            raise NotMp4(f"box {kind.decode('latin-1')} has an impossible size {size}")
        self._next_box += size

    def finish(self) -> None:
        """Raise ``NotMp4`` unless the whole file was a consistent box sequence with a moov."""
        if not self.boxes:
            raise NotMp4("the file is too short to be an MP4")
        if not self._to_end and (self._header or self._next_box != self.size):
            raise NotMp4(
                f"the box sizes add up to {self._next_box} bytes but the file has {self.size}"
                " (truncated or padded)"
            )
        if b"moov" not in self.boxes:
            raise NotMp4("the file has no moov box (no playable index: truncated or not MP4)")


def check_mp4(data: bytes) -> None:
    """``Mp4Check`` over one buffer."""
    check = Mp4Check()
    check.feed(data)
    check.finish()
