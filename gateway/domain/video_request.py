"""The one canonical, normalized video request every later step works from.

``requests.parse_video_request`` builds it from a decoded body; pricing, cache keys, the upstream
body and storage all read this object, never the raw JSON. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

MediaType = Literal["image_url", "video_url", "audio_url"]
Role = Literal["first_frame", "last_frame", "reference_image", "reference_video", "reference_audio"]

ROLE_MEDIA: Mapping[str, str] = {
    "first_frame": "image_url",
    "last_frame": "image_url",
    "reference_image": "image_url",
    "reference_video": "video_url",
    "reference_audio": "audio_url",
}


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """Where an inline (``data:``) item's bytes went: the blob named by ``sha256``. Only the
    stored copy of a request carries it (``domain/inline_media.py``); its ``url`` is then
    ``blob:sha256:<sha256>``."""

    sha256: str
    bytes: int
    media_type: str


@dataclass(frozen=True, slots=True)
class ContentItem:
    """One reference media item, in the order the client gave it."""

    type: MediaType
    url: str
    role: Role
    stored: StoredMedia | None = None

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"url": self.url}
        if self.stored is not None:
            payload.update(
                sha256=self.stored.sha256,
                bytes=self.stored.bytes,
                media_type=self.stored.media_type,
            )
        return {"type": self.type, self.type: payload, "role": self.role}

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> ContentItem:
        payload = item[item["type"]]
        stored = None
        if "sha256" in payload:
            stored = StoredMedia(
                sha256=payload["sha256"],
                bytes=int(payload["bytes"]),
                media_type=payload["media_type"],
            )
        return cls(type=item["type"], url=payload["url"], role=item["role"], stored=stored)


@dataclass(frozen=True, slots=True)
class StoryboardSegment:
    """One client-planned segment of a chained video (the ``segments`` extension)."""

    prompt: str
    duration: int

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "duration": self.duration}


@dataclass(frozen=True, slots=True)
class VideoRequest:
    """A validated request with every default filled and every OpenAI alias resolved."""

    model: str
    prompt: str
    content: tuple[ContentItem, ...] = ()
    ratio: str = "16:9"
    resolution: str = "720p"
    duration: int = 5
    generate_audio: bool = False
    return_last_frame: bool = False
    watermark: bool = False
    seed: int | None = None
    segments: tuple[StoryboardSegment, ...] = ()  # a storyboard; empty: planned by the gateway

    @property
    def has_reference_video(self) -> bool:
        return any(item.type == "video_url" for item in self.content)

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form: stored with the job and sent upstream as the body."""
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": self.prompt,
            "content": [item.to_json() for item in self.content],
            "ratio": self.ratio,
            "resolution": self.resolution,
            "duration": self.duration,
            "generate_audio": self.generate_audio,
            "return_last_frame": self.return_last_frame,
            "watermark": self.watermark,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if self.segments:  # only then: the canonical form of other requests is unchanged
            body["segments"] = [segment.to_json() for segment in self.segments]
        return body

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VideoRequest:
        """Rebuild from ``to_json`` output (trusted: it was validated before it was stored).

        Every shape ever stored decodes: rows from before storyboards have no ``segments``,
        rows after the inline-media move name blobs (``ContentItem.stored``)."""
        return cls(
            model=data["model"],
            prompt=data["prompt"],
            content=tuple(ContentItem.from_json(item) for item in data.get("content", ())),
            ratio=data["ratio"],
            resolution=data["resolution"],
            duration=int(data["duration"]),
            generate_audio=bool(data["generate_audio"]),
            return_last_frame=bool(data["return_last_frame"]),
            watermark=bool(data["watermark"]),
            seed=data.get("seed"),
            segments=tuple(
                StoryboardSegment(prompt=item["prompt"], duration=int(item["duration"]))
                for item in data.get("segments", ())
            ),
        )
