"""The create-body rules the real upstream enforces, as the sandbox checks them.

``validate_create`` turns a decoded JSON body into the few values the fake needs, or raises
``RequestRejected`` with an Ark-style descriptive message. Pure: reads only the model catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.domain.catalog import (
    DEFAULT_DURATION,
    DEFAULT_MODELS,
    DEFAULT_RATIO,
    DEFAULT_RESOLUTION,
    MAX_AUDIOS,
    MAX_IMAGES,
    MAX_PROMPT_CHARS,
    MAX_VIDEOS,
    RATIOS,
    SEED_MAX,
    SEED_MIN,
    ModelSpec,
)

MODELS: Mapping[str, ModelSpec] = {spec.id: spec for spec in DEFAULT_MODELS}
MEDIA_TYPES: tuple[str, ...] = ("image_url", "video_url", "audio_url")
ROLE_MEDIA: Mapping[str, str] = {
    "first_frame": "image_url",
    "last_frame": "image_url",
    "reference_image": "image_url",
    "reference_video": "video_url",
    "reference_audio": "audio_url",
}
MEDIA_LIMITS: Mapping[str, int] = {
    "image_url": MAX_IMAGES,
    "video_url": MAX_VIDEOS,
    "audio_url": MAX_AUDIOS,
}
BOOL_FIELDS: tuple[str, ...] = ("generate_audio", "return_last_frame", "watermark", "camera_fixed")


class RequestRejected(Exception):
    """A create body the upstream would answer with HTTP 400."""


@dataclass(frozen=True, slots=True)
class CreateParams:
    """What the fake keeps from a valid create body (defaults filled in)."""

    model: str
    ratio: str
    resolution: str
    duration: int
    seed: int | None
    return_last_frame: bool
    generate_audio: bool = False
    prompt: str = ""
    first_frame_url: str | None = None


def validate_create(body: Any) -> CreateParams:
    """Check ``body`` like the real upstream; raise ``RequestRejected`` on the first violation."""
    if not isinstance(body, dict):
        raise RequestRejected("the request body must be a JSON object")
    model, spec = _checked_model(body.get("model"))
    _check_prompt(body.get("prompt"))
    ratio = body.get("ratio", DEFAULT_RATIO)
    if ratio not in RATIOS:
        raise RequestRejected(
            f"the parameter `ratio` specified in the request is not valid: {ratio!r}; "
            f"allowed: {', '.join(RATIOS)}"
        )
    resolution = body.get("resolution", DEFAULT_RESOLUTION)
    if resolution not in spec.resolutions:
        raise RequestRejected(
            f"the parameter `resolution` specified in the request is not valid for model "
            f"{model}: {resolution!r}; allowed: {', '.join(spec.resolutions)}"
        )
    duration = _checked_duration(body.get("duration", DEFAULT_DURATION), spec)
    seed = _checked_seed(body.get("seed"))
    for name in BOOL_FIELDS:
        if name in body and not isinstance(body[name], bool):
            raise RequestRejected(f"the parameter `{name}` must be a boolean")
    _check_content(body.get("content", []), spec)
    return CreateParams(
        model=model,
        ratio=ratio,
        resolution=resolution,
        duration=duration,
        seed=seed,
        return_last_frame=body.get("return_last_frame") is True,
        generate_audio=body.get("generate_audio") is True,
        prompt=body["prompt"],
        first_frame_url=_first_frame_url(body.get("content", [])),
    )


def _checked_model(model: Any) -> tuple[str, ModelSpec]:
    """The model's name and spec: it must be one the real upstream offers."""
    if not isinstance(model, str) or not model:
        raise RequestRejected("the parameter `model` is required")
    spec = MODELS.get(model)
    if spec is None:
        raise RequestRejected(
            f"the model `{model}` does not exist or you do not have access to it; "
            f"valid models: {', '.join(MODELS)}"
        )
    return model, spec


def _checked_duration(duration: Any, spec: ModelSpec) -> int:
    if not _is_int(duration) or not spec.min_duration <= duration <= spec.max_duration:
        raise RequestRejected(
            f"the parameter `duration` specified in the request is not valid: {duration!r}; "
            f"it must be an integer from {spec.min_duration} to {spec.max_duration}"
        )
    return int(duration)


def _checked_seed(seed: Any) -> int | None:
    if seed is not None and (not _is_int(seed) or not SEED_MIN <= seed <= SEED_MAX):
        raise RequestRejected(
            f"the parameter `seed` specified in the request is not valid: {seed!r}; "
            f"it must be an integer from {SEED_MIN} to {SEED_MAX}"
        )
    return None if seed is None else int(seed)


def _first_frame_url(content: list[Any]) -> str | None:
    """The ``first_frame`` image's URL (``content`` is already validated)."""
    for item in content:
        if item.get("role") == "first_frame":
            url = item["image_url"]["url"]
            return url if isinstance(url, str) else None
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_prompt(prompt: Any) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise RequestRejected("the parameter `prompt` is required and must be a non-empty string")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise RequestRejected(
            f"the parameter `prompt` is too long: {len(prompt)} characters; "
            f"at most {MAX_PROMPT_CHARS} are allowed"
        )


def _check_content(content: Any, spec: ModelSpec) -> None:
    if not isinstance(content, list):
        raise RequestRejected("the parameter `content` must be an array")
    counts = dict.fromkeys(MEDIA_TYPES, 0)
    roles: dict[str, int] = {}
    for index, item in enumerate(content):
        where = f"content[{index}]"
        if not isinstance(item, dict):
            raise RequestRejected(f"{where} must be an object")
        kind = item.get("type")
        if kind == "text":
            if not isinstance(item.get("text"), str):
                raise RequestRejected(f"{where}.text must be a string")
            continue
        if kind not in MEDIA_TYPES:
            raise RequestRejected(
                f"{where}.type is not valid: {kind!r}; allowed: text, {', '.join(MEDIA_TYPES)}"
            )
        media = item.get(kind)
        if not isinstance(media, dict) or not isinstance(media.get("url"), str) or not media["url"]:
            raise RequestRejected(f"{where}.{kind}.url is required and must be a non-empty string")
        role: Any = item.get("role")
        if role not in ROLE_MEDIA:
            raise RequestRejected(
                f"{where}.role is not valid: {role!r}; allowed: {', '.join(ROLE_MEDIA)}"
            )
        if ROLE_MEDIA[role] != kind:
            raise RequestRejected(
                f"{where}.role {role} requires type {ROLE_MEDIA[role]}, not {kind}"
            )
        if role == "reference_image" and not spec.supports_reference_image:
            raise RequestRejected(f"{where}: model {spec.id} does not support reference_image")
        counts[kind] += 1
        roles[role] = roles.get(role, 0) + 1
    for kind, limit in MEDIA_LIMITS.items():
        if counts[kind] > limit:
            raise RequestRejected(f"too many {kind} items in content: {counts[kind]} > {limit}")
    for role in ("first_frame", "last_frame"):
        if roles.get(role, 0) > 1:
            raise RequestRejected(f"content may hold at most one {role}")
