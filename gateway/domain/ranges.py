"""HTTP byte ranges (RFC 9110 section 14) for serving stored videos: pure parsing."""

from __future__ import annotations

from dataclasses import dataclass

# Positions longer than this are past any object we store (and past what ``int`` should parse
# from a header: Python refuses strings over 4300 digits, and big ones cost time).
MAX_DIGITS = 19


class RangeNotSatisfiable(ValueError):
    """The range lies wholly outside the object: answer 416."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range a ``Range`` header asks for, or None to send the whole object.

    Headers we do not serve as a range (several ranges, other units, malformed syntax) are
    ignored, as the RFC allows; a well-formed range that starts past the end raises
    ``RangeNotSatisfiable``.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not first:  # suffix range: the last N bytes
        if not _is_digits(last):
            return None
        count = _number(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable(header[:64])
        return ByteRange(max(0, size - count), size)
    if not _is_digits(first) or (last and not _is_digits(last)):
        return None
    if len(first) > MAX_DIGITS:
        raise RangeNotSatisfiable(header[:64])
    start = int(first)
    end = _number(last) + 1 if last else size
    if last and end <= start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(header[:64])
    return ByteRange(start, min(end, size))


def _number(digits: str) -> int:
    """A position; anything longer than ``MAX_DIGITS`` reads as "beyond any object"."""
    return int(digits) if len(digits) <= MAX_DIGITS else 10**MAX_DIGITS


def _is_digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²" (a Latin-1 header byte), which
    ``int`` then refuses."""
    return text.isascii() and text.isdigit()


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (or ``*``)."""
    if not if_none_match:
        return False
    candidates = [c.strip().removeprefix("W/") for c in if_none_match.split(",")]
    return "*" in candidates or etag in candidates
