"""What a stored video really is, as the probe measured it: container, codecs, frame size,
duration and whether it has sound. Pure values; ``gateway/media/probe.py`` measures them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MediaFacts:
    """The probed figures kept with a stored video asset.

    ``duration_ms`` is what was delivered; the Video object's ``seconds`` stays the requested
    whole seconds (OpenAI clients read it), these figures travel as extension fields.
    """

    container: str
    video_codec: str
    width: int
    height: int
    duration_ms: int
    has_audio: bool
    frames: int = 0

    def extension_fields(self) -> dict[str, object]:
        """The Video object's ``delivered_*`` extension fields."""
        return {
            "delivered_duration_ms": self.duration_ms,
            "delivered_width": self.width,
            "delivered_height": self.height,
            "delivered_codec": self.video_codec,
            "delivered_audio": self.has_audio,
        }

    def to_json(self) -> str:
        """The stored form (the ``assets.media_json`` column)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MediaFacts:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)
