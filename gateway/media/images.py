"""Which still-image type a last frame is, told by its first bytes (never by what the upstream
claims): only PNG, JPEG and WebP are stored and served. Pure: no I/O."""

from __future__ import annotations

from typing import Final

IMAGE_TYPES: Final = ("image/png", "image/jpeg", "image/webp")
# Bytes needed to recognise every supported type.
MAGIC_LENGTH: Final = 12


def image_type(head: bytes) -> str | None:
    """The media type whose signature ``head`` starts with, or ``None``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None
