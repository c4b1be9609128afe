"""Parse, validate and normalize a decoded ``POST /v1/videos`` body into a ``VideoRequest``.

Every rule comes from shared/upstream-api.md. Each rejection is an ``InvalidRequest`` whose
``param`` names the exact field (``content[2].role``) and whose message says what is allowed.
Pure: no I/O, no web framework.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from gateway.domain.catalog import (
    DEFAULT_DURATION,
    DEFAULT_RATIO,
    DEFAULT_RESOLUTION,
    MAX_AUDIOS,
    MAX_IMAGES,
    MAX_PROMPT_CHARS,
    MAX_VIDEOS,
    RATIOS,
    RESOLUTIONS,
    SEED_MAX,
    SEED_MIN,
    Catalog,
    ModelSpec,
)
from gateway.domain.storyboard import chaining_allowed, parse_storyboard
from gateway.domain.video_request import (
    ROLE_MEDIA,
    ContentItem,
    MediaType,
    Role,
    StoryboardSegment,
    VideoRequest,
)
from gateway.errors import InvalidRequest, UnsupportedFeature

KNOWN_FIELDS: tuple[str, ...] = (
    *("model", "prompt", "content", "ratio", "resolution", "duration", "generate_audio"),
    *("return_last_frame", "seed", "watermark", "seconds", "size", "input_reference"),
    "segments",
)
MEDIA_MAJOR: Mapping[str, str] = {"image_url": "image", "video_url": "video", "audio_url": "audio"}
MEDIA_LIMITS: Mapping[str, int] = {
    "image_url": MAX_IMAGES,
    "video_url": MAX_VIDEOS,
    "audio_url": MAX_AUDIOS,
}
DEFAULT_ROLE: Mapping[str, Role] = {"video_url": "reference_video", "audio_url": "reference_audio"}
SHORT_SIDE_RESOLUTION: Mapping[int, str] = {480: "480p", 720: "720p", 1080: "1080p"}
RATIO_TOLERANCE = 0.02  # 854x480 (what players call 480p 16:9) is 16:9 too

_ITEM_EXAMPLE = '{"type": "image_url", "image_url": {"url": "https://..."}, "role": "first_frame"}'
_INT_TEXT = re.compile(r"[+-]?\d{1,20}(?:\.0*)?")
_SIZE = re.compile(r"(\d{1,6})[xX](\d{1,6})")
_SPACE = re.compile(r"\s")
_DATA_URL = re.compile(r"data:([A-Za-z]+)/[A-Za-z0-9.+-]+(?:;[^;,=]+=[^;,]*)*;base64,(.*)", re.S)


@dataclass(frozen=True)
class UploadedFile:
    """One multipart file part, as the web layer read it."""

    filename: str | None
    content_type: str
    data: bytes


def parse_video_request(
    body: Mapping[str, Any],
    catalog: Catalog,
    *,
    reject_unknown_fields: bool = True,
    from_form: bool = False,
    max_chained_seconds: int = 0,
) -> VideoRequest:
    """Validate ``body`` (decoded from JSON, or rebuilt from multipart when ``from_form``).

    JSON ``null`` counts as "not given". ``from_form`` also accepts the text that multipart
    forces on scalars (``"5"``, ``"true"``); no other coercion happens. Durations past the
    model's maximum, up to ``max_chained_seconds``, are chained videos (0: none).
    """
    if not isinstance(body, Mapping):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    if reject_unknown_fields:
        _reject_unknown(body, KNOWN_FIELDS, prefix="")
    fields = {key: value for key, value in body.items() if value is not None}
    spec = _parse_model(fields, catalog)
    prompt = _parse_prompt(fields)
    storyboard = parse_storyboard(fields.get("segments"), spec, max_chained_seconds)
    duration = _parse_duration(fields, spec, from_form, max_chained_seconds, storyboard)
    ratio, resolution = _parse_ratio_resolution(fields, spec)
    content = _parse_content(fields.get("content"), spec, reject_unknown_fields)
    reference = _parse_input_reference(fields.get("input_reference"), reject_unknown_fields)
    if reference is not None:
        if any(item.role == "first_frame" for item in content):
            message = "input_reference is the first frame, and content has a first_frame too."
            raise _invalid("input_reference", message + " Send only one.", "conflicting_parameters")
        content = (reference, *content)
    _check_content_limits(content, offset=0 if reference is None else 1)
    seed = _parse_int(fields.get("seed"), "seed", from_form)
    if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
        raise _invalid("seed", f"seed must be between {SEED_MIN} and {SEED_MAX}.")
    return VideoRequest(
        model=spec.id,
        prompt=prompt,
        content=content,
        ratio=ratio,
        resolution=resolution,
        duration=duration,
        generate_audio=_parse_bool(fields, "generate_audio", False, from_form),
        return_last_frame=_parse_bool(fields, "return_last_frame", False, from_form),
        watermark=_parse_bool(fields, "watermark", spec.default_watermark, from_form),
        seed=None if seed == -1 else seed,  # -1 is Ark's "random": the same as no seed
        segments=storyboard,
    )


def _invalid(param: str, message: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def _missing(param: str, hint: str = "") -> InvalidRequest:
    message = f"Missing required parameter: '{param}'.{hint}"
    return _invalid(param, message, "missing_required_parameter")


def _wrong_type(param: str, expected: str) -> InvalidRequest:
    return _invalid(param, f"{param} must be {expected}.", "invalid_type")


def _reject_unknown(mapping: Mapping[str, Any], allowed: tuple[str, ...], *, prefix: str) -> None:
    for key in mapping:
        if key not in allowed:
            message = f"Unknown parameter: '{prefix}{key}'. Allowed here: {', '.join(allowed)}."
            raise _invalid(f"{prefix}{key}", message, "unknown_parameter")


def _expect_str(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise _wrong_type(param, "a string")
    return value


def _required_str(fields: Mapping[str, Any], name: str) -> str:
    if name not in fields:
        raise _missing(name)
    return _expect_str(fields[name], name)


def _parse_model(fields: Mapping[str, Any], catalog: Catalog) -> ModelSpec:
    name = _required_str(fields, "model")
    spec = catalog.resolve(name)
    if spec is None:
        message = f"The model '{name}' does not exist. Known models: {', '.join(catalog.names())}."
        raise _invalid("model", message, "model_not_found")
    return spec


def _parse_prompt(fields: Mapping[str, Any]) -> str:
    prompt = _required_str(fields, "prompt")
    if not prompt.strip():
        raise _invalid("prompt", "prompt must not be empty.")
    if len(prompt) > MAX_PROMPT_CHARS:
        message = f"prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are allowed."
        raise _invalid("prompt", message)
    return prompt


def _parse_int(value: object, param: str, allow_text: bool) -> int | None:
    """An integer, an integral float, or (when ``allow_text``) its decimal text; None if absent."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if allow_text and isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(float(value)) if "." in value else int(value)
    raise _wrong_type(param, "an integer")


def _parse_bool(fields: Mapping[str, Any], name: str, default: bool, from_form: bool) -> bool:
    value = fields.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if from_form and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _wrong_type(name, "a boolean (true or false)")


def _parse_duration(
    fields: Mapping[str, Any],
    spec: ModelSpec,
    from_form: bool,
    max_chained_seconds: int,
    storyboard: tuple[StoryboardSegment, ...],
) -> int:
    duration = _parse_int(fields.get("duration"), "duration", from_form)
    seconds = _parse_int(fields.get("seconds"), "seconds", allow_text=True)  # OpenAI: a string
    if duration is not None and seconds is not None and duration != seconds:
        message = f"seconds ({seconds}) and duration ({duration}) disagree; send only one."
        raise _invalid("seconds", message, "conflicting_parameters")
    param, value = ("duration", duration) if duration is not None else ("seconds", seconds)
    total = sum(segment.duration for segment in storyboard)
    if value is None:
        return total or max(spec.min_duration, min(spec.max_duration, DEFAULT_DURATION))
    if storyboard and value != total:
        message = f"The segments last {total} seconds but {param} is {value}; they must agree."
        raise _invalid("segments", message, "conflicting_parameters")
    longest = max_chained_seconds if chaining_allowed(spec, max_chained_seconds) else 0
    if not spec.min_duration <= value <= max(spec.max_duration, longest):
        bounds = f"between {spec.min_duration} and {spec.max_duration} seconds for {spec.id}"
        if longest:
            bounds += f" (up to {longest} seconds as a video chained through last frames)"
        raise _invalid(param, f"{param} must be {bounds}; got {value}.")
    return value


def _parse_ratio_resolution(fields: Mapping[str, Any], spec: ModelSpec) -> tuple[str, str]:
    ratio = _parse_choice(fields.get("ratio"), "ratio", RATIOS)
    resolution = _parse_choice(fields.get("resolution"), "resolution", RESOLUTIONS)
    size_ratio, size_resolution = _parse_size(fields.get("size"))
    pairs = (("ratio", ratio, size_ratio), ("resolution", resolution, size_resolution))
    for name, explicit, derived in pairs:
        if explicit is not None and derived is not None and explicit != derived:
            message = f"size means {name} {derived}, but {name} is {explicit}; send only one."
            raise _invalid("size", message, "conflicting_parameters")
    fallback = DEFAULT_RESOLUTION if DEFAULT_RESOLUTION in spec.resolutions else spec.resolutions[0]
    final = resolution or size_resolution or fallback
    if final not in spec.resolutions:
        param = "resolution" if resolution else "size"
        supported = ", ".join(spec.resolutions)
        message = (
            f"{param} means {final}, which {spec.id} does not support; it supports {supported}."
        )
        raise _invalid(param, message, "unsupported_value")
    return ratio or size_ratio or DEFAULT_RATIO, final


def _parse_choice(value: object, param: str, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if _expect_str(value, param) not in allowed:
        raise _invalid(param, f"{param} must be one of {', '.join(allowed)}.")
    return cast(str, value)


def _parse_size(value: object) -> tuple[str | None, str | None]:
    """(ratio, resolution) meant by an OpenAI ``size``: ``WxH`` or a bare ``720p``."""
    if value is None:
        return None, None
    text = _expect_str(value, "size").strip()
    if text in RESOLUTIONS:
        return None, text
    match = _SIZE.fullmatch(text)
    if match is None or 0 in (int(match[1]), int(match[2])):
        message = "size must be WIDTHxHEIGHT (e.g. 1280x720) or one of 480p, 720p, 1080p."
        raise _invalid("size", message)
    width, height = int(match[1]), int(match[2])
    ratio = next((r for r in RATIOS if _is_near(width / height, r)), None)
    if ratio is None:
        raise _invalid("size", f"size {text} is not one of the ratios {', '.join(RATIOS)}.")
    resolution = SHORT_SIDE_RESOLUTION.get(min(width, height))
    if resolution is None:
        message = f"size {text} has a short side of {min(width, height)}; allowed: 480, 720, 1080."
        raise _invalid("size", message)
    return ratio, resolution


def _is_near(aspect: float, ratio: str) -> bool:
    w, h = (int(x) for x in ratio.split(":"))
    return abs(aspect / (w / h) - 1) <= RATIO_TOLERANCE


def _parse_content(value: object, spec: ModelSpec, reject_unknown: bool) -> tuple[ContentItem, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            message = "content sent as a string must be a JSON-encoded array of media items."
            raise _invalid("content", message) from None
    if not isinstance(value, list):
        raise _wrong_type("content", "an array of media items")
    return tuple(
        _parse_item(item, f"content[{index}]", spec, reject_unknown)
        for index, item in enumerate(value)
    )


def _parse_item(item: object, param: str, spec: ModelSpec, reject_unknown: bool) -> ContentItem:
    if not isinstance(item, Mapping):
        raise _wrong_type(param, f"an object like {_ITEM_EXAMPLE}")
    kind = _parse_item_type(item.get("type"), f"{param}.type")
    if reject_unknown:
        _reject_unknown(item, ("type", kind, "role"), prefix=f"{param}.")
    media = item.get(kind)
    if media is None:
        raise _missing(f"{param}.{kind}", ' It must be an object like {"url": "https://..."}.')
    if not isinstance(media, Mapping):
        raise _wrong_type(f"{param}.{kind}", 'an object like {"url": "https://..."}')
    if reject_unknown:
        _reject_unknown(media, ("url",), prefix=f"{param}.{kind}.")
    if media.get("url") is None:
        raise _missing(f"{param}.{kind}.url")
    url = _parse_url(media["url"], f"{param}.{kind}.url", kind)
    return ContentItem(type=kind, url=url, role=_parse_role(item.get("role"), param, kind, spec))


def _parse_item_type(value: object, param: str) -> MediaType:
    if value is None:
        raise _missing(param, " Use image_url, video_url or audio_url.")
    kind = _expect_str(value, param)
    if kind == "text":
        raise _invalid(param, f"{param} text is not accepted; put the text in 'prompt'.")
    if kind not in MEDIA_MAJOR:
        raise _invalid(param, f"{param} must be one of image_url, video_url, audio_url.")
    return cast(MediaType, kind)


def _parse_role(value: object, param: str, kind: str, spec: ModelSpec) -> Role:
    param = f"{param}.role"
    if value is None:
        if kind in DEFAULT_ROLE:
            return DEFAULT_ROLE[kind]
        raise _missing(param, " An image needs first_frame, last_frame or reference_image.")
    role = _expect_str(value, param)
    if role not in ROLE_MEDIA:
        raise _invalid(param, f"{param} must be one of {', '.join(ROLE_MEDIA)}.")
    if ROLE_MEDIA[role] != kind:
        allowed = ", ".join(r for r, media in ROLE_MEDIA.items() if media == kind)
        raise _invalid(param, f"The role {role} does not fit a {kind} item; allowed: {allowed}.")
    if role == "reference_image" and not spec.supports_reference_image:
        message = f"{param}: {spec.id} does not support reference_image; use first/last_frame."
        raise _invalid(param, message, "unsupported_value")
    return cast(Role, role)


def _parse_url(value: object, param: str, kind: str) -> str:
    """An http(s) URL with a host, or a base64 ``data:`` URL of the item's media type."""
    url = _expect_str(value, param)
    major = MEDIA_MAJOR[kind]
    if url[:5].lower() == "data:":
        match = _DATA_URL.fullmatch(url)
        if match is None or match[1].lower() != major:
            raise _invalid(param, f"{param} must be a data:{major}/<subtype>;base64,... URL.")
        try:
            decoded = base64.b64decode(match[2], validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if not decoded:
            raise _invalid(param, f"{param} does not hold a valid base64 payload.")
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname if parts.scheme in ("http", "https") else None
    except ValueError:  # e.g. a broken IPv6 literal
        host = None
    if not host or _SPACE.search(url):
        message = f"{param} must be an http(s):// URL with a host or a data:{major}/... URL."
        raise _invalid(param, message)
    return url


def _parse_input_reference(value: object, reject_unknown: bool) -> ContentItem | None:
    """OpenAI's ``input_reference`` (a file part or ``{image_url}``) as a first_frame item."""
    if value is None:
        return None
    if isinstance(value, UploadedFile):
        ctype = value.content_type.split(";")[0].strip().lower()
        if not ctype.startswith("image/") or not value.data:
            message = f"input_reference must be a non-empty image/* file; got {ctype or 'none'}."
            raise _invalid("input_reference", message)
        payload = base64.b64encode(value.data).decode("ascii")
        url = f"data:{ctype};base64,{payload}"
        return ContentItem(type="image_url", url=url, role="first_frame")
    if not isinstance(value, Mapping):
        raise _wrong_type("input_reference", "an image file or an object with image_url")
    if reject_unknown:
        _reject_unknown(value, ("image_url", "file_id"), prefix="input_reference.")
    given = [key for key in ("image_url", "file_id") if value.get(key) is not None]
    if len(given) != 1:
        message = "input_reference must hold exactly one of image_url or file_id."
        code = "conflicting_parameters" if given else "invalid_value"
        raise _invalid("input_reference", message, code)
    if given == ["file_id"]:
        raise UnsupportedFeature(
            "File ids are not supported; send input_reference.image_url or upload the image.",
            param="input_reference.file_id",
        )
    url = _parse_url(value["image_url"], "input_reference.image_url", "image_url")
    return ContentItem(type="image_url", url=url, role="first_frame")


def _check_content_limits(content: tuple[ContentItem, ...], *, offset: int) -> None:
    """Media counts and frame roles; ``offset`` maps indexes back to the client's content."""
    for kind, limit in MEDIA_LIMITS.items():
        count = sum(item.type == kind for item in content)
        if count > limit:
            message = f"content has {count} {MEDIA_MAJOR[kind]}s; at most {limit} are allowed."
            raise _invalid("content", message, "too_many_items")
    seen: dict[str, int] = {}
    for index, item in enumerate(content):
        if item.role in ("first_frame", "last_frame"):
            if item.role in seen:
                param = f"content[{index - offset}].role"
                raise _invalid(param, f"{param}: only one {item.role} is allowed.")
            seen[item.role] = index
    if "last_frame" in seen and "first_frame" not in seen:
        param = f"content[{seen['last_frame'] - offset}].role"
        raise _invalid(param, f"{param}: a last_frame needs a first_frame image item too.")
