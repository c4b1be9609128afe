"""The sandbox upstream's settings: one frozen value object, checked on construction.

Owns the vocabulary of poll shapes and URL placements the fake can answer in. Imports nothing
from the rest of the gateway and does no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

POLL_SHAPES: tuple[str, ...] = ("openai", "ark", "relay")
URL_FIELDS: tuple[str, ...] = ("video_url", "url", "content.video_url", "metadata.url", "none")
MIN_VIDEO_BYTES = 64
MAX_VIDEO_BYTES = 2**32 - 1


@dataclass(frozen=True)
class SandboxConfig:
    """How the fake AIHubMix behaves; change it at runtime with ``SandboxState.set_config``.

    ``broke_key`` is the Bearer key that always gets the 403 "insufficient balance" answer
    on create (``None`` disables it). ``max_jobs`` bounds memory under long benchmarks (about
    1 KB a job): past it the oldest job is forgotten (0 = no bound). Every job renders a real
    H.264 MP4 whose shorter side is ``frame_short_side`` pixels at ``frame_rate`` frames a
    second; ``video_bytes`` is the least size served (a ``free`` box pads the render).
    """

    queue_seconds: float = 1.0
    run_seconds: float = 4.0
    video_bytes: int = 256 * 1024
    link_ttl_seconds: float = 86400.0
    api_key: str | None = None
    poll_shape: str = "openai"
    url_field: str = "video_url"
    broke_key: str | None = "sk-broke"
    max_jobs: int = 500_000
    frame_short_side: int = 90
    frame_rate: int = 24

    def __post_init__(self) -> None:
        if self.poll_shape not in POLL_SHAPES:
            raise ValueError(f"poll_shape must be one of {', '.join(POLL_SHAPES)}")
        if self.url_field not in URL_FIELDS:
            raise ValueError(f"url_field must be one of {', '.join(URL_FIELDS)}")
        if not MIN_VIDEO_BYTES <= self.video_bytes <= MAX_VIDEO_BYTES:
            raise ValueError(f"video_bytes must be in [{MIN_VIDEO_BYTES}, {MAX_VIDEO_BYTES}]")
        if not 16 <= self.frame_short_side <= 1080:
            raise ValueError("frame_short_side must be in [16, 1080]")
        if not 1 <= self.frame_rate <= 60:
            raise ValueError("frame_rate must be in [1, 60]")
        if self.max_jobs < 0:
            raise ValueError("max_jobs must not be negative")
        for name in ("queue_seconds", "run_seconds", "link_ttl_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def with_changes(self, changes: Mapping[str, Any]) -> SandboxConfig:
        """A copy with ``changes`` applied, each checked against the field's type.

        Raises ``ValueError`` for an unknown field, a wrongly typed value or an invalid result.
        """
        fields = {f.name: f for f in dataclasses.fields(self)}
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in fields:
                raise ValueError(f"unknown config field {name!r}")
            clean[name] = _coerce(name, value, default=getattr(SandboxConfig, name))
        return dataclasses.replace(self, **clean)


def _coerce(name: str, value: Any, *, default: Any) -> Any:
    """``value`` checked against the type of the field's default (floats accept ints)."""
    if isinstance(default, bool) or isinstance(value, bool):
        raise ValueError(f"{name} has the wrong type")
    if isinstance(default, float):
        if not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number")
        return float(value)
    if isinstance(default, int):
        if not isinstance(value, int):
            raise ValueError(f"{name} must be an integer")
        return value
    # str fields, some nullable (their default is None or a str)
    if value is None and name in ("api_key", "broke_key"):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value
