"""Shared request bodies: JSON bodies the gateway must reject (with the exact ``param`` and
``code``) and bodies it must accept (with a subset of the normalized ``VideoRequest.to_json()``).

Used by the domain parser tests and by HTTP-level tests; every model is in ``default_catalog()``.
"""

from __future__ import annotations

import base64
import json
from typing import Any, NamedTuple

V2 = "doubao-seedance-2-0-260128"  # 480p/720p, reference images
V2_FAST = "doubao-seedance-2-0-fast-260128"
V15 = "doubao-seedance-1-5-pro-251215"  # up to 1080p, no reference images
V10_FAST = "doubao-seedance-1-0-pro-fast-251015"

PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nfakepng").decode()
IMAGE = "https://example.com/a.jpg"
VIDEO = "https://example.com/v.mp4"
AUDIO = "https://example.com/m.mp3"


class BadCase(NamedTuple):
    id: str
    body: dict[str, Any]
    param: str | None
    code: str


def base(**fields: Any) -> dict[str, Any]:
    """A valid minimal body with ``fields`` merged in."""
    return {"model": V2_FAST, "prompt": "A paper boat on a pond", **fields}


def image(url: Any = IMAGE, role: Any = "first_frame") -> dict[str, Any]:
    item: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if role is not None:
        item["role"] = role
    return item


def video(url: Any = VIDEO, role: Any = "reference_video") -> dict[str, Any]:
    item: dict[str, Any] = {"type": "video_url", "video_url": {"url": url}}
    if role is not None:
        item["role"] = role
    return item


def audio(url: Any = AUDIO, role: Any = "reference_audio") -> dict[str, Any]:
    item: dict[str, Any] = {"type": "audio_url", "audio_url": {"url": url}}
    if role is not None:
        item["role"] = role
    return item


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


BAD_REQUESTS: list[BadCase] = [
    # model
    BadCase("model-missing", _without(base(), "model"), "model", "missing_required_parameter"),
    BadCase("model-null", base(model=None), "model", "missing_required_parameter"),
    BadCase("model-not-string", base(model=123), "model", "invalid_type"),
    BadCase("model-unknown", base(model="sora-2"), "model", "model_not_found"),
    # prompt
    BadCase("prompt-missing", _without(base(), "prompt"), "prompt", "missing_required_parameter"),
    BadCase("prompt-null", base(prompt=None), "prompt", "missing_required_parameter"),
    BadCase("prompt-not-string", base(prompt=["a"]), "prompt", "invalid_type"),
    BadCase("prompt-blank", base(prompt="  \n "), "prompt", "invalid_value"),
    BadCase("prompt-too-long", base(prompt="x" * 4001), "prompt", "invalid_value"),
    # unknown top-level field
    BadCase("unknown-field", base(fps=24), "fps", "unknown_parameter"),
    BadCase("unknown-field-text", base(text="hi"), "text", "unknown_parameter"),
    # duration / seconds
    BadCase("duration-bool", base(duration=True), "duration", "invalid_type"),
    BadCase("duration-fraction", base(duration=5.5), "duration", "invalid_type"),
    BadCase("duration-string-in-json", base(duration="5"), "duration", "invalid_type"),
    BadCase("duration-too-short", base(duration=1), "duration", "invalid_value"),
    BadCase(
        "duration-too-long", base(duration=61), "duration", "invalid_value"
    ),  # past chaining too
    BadCase("seconds-not-integer", base(seconds="eight"), "seconds", "invalid_type"),
    BadCase("seconds-fraction", base(seconds="4.5"), "seconds", "invalid_type"),
    BadCase("seconds-out-of-range", base(seconds="61"), "seconds", "invalid_value"),
    BadCase(
        "seconds-conflicts-duration",
        base(duration=5, seconds="8"),
        "seconds",
        "conflicting_parameters",
    ),
    # size
    BadCase("size-not-string", base(size=720), "size", "invalid_type"),
    BadCase("size-garbage", base(size="large"), "size", "invalid_value"),
    BadCase("size-zero", base(size="0x720"), "size", "invalid_value"),
    BadCase("size-odd-ratio", base(size="1024x1792"), "size", "invalid_value"),
    BadCase("size-odd-short-side", base(size="1600x900"), "size", "invalid_value"),
    BadCase(
        "size-conflicts-ratio",
        base(size="1280x720", ratio="9:16"),
        "size",
        "conflicting_parameters",
    ),
    BadCase(
        "size-conflicts-resolution",
        base(size="1280x720", resolution="480p"),
        "size",
        "conflicting_parameters",
    ),
    BadCase("size-unsupported-resolution", base(size="1920x1080"), "size", "unsupported_value"),
    # ratio / resolution
    BadCase("ratio-invalid", base(ratio="2:1"), "ratio", "invalid_value"),
    BadCase("ratio-not-string", base(ratio=1.78), "ratio", "invalid_type"),
    BadCase("resolution-invalid", base(resolution="4k"), "resolution", "invalid_value"),
    BadCase("resolution-unsupported", base(resolution="1080p"), "resolution", "unsupported_value"),
    # booleans
    BadCase("generate-audio-string", base(generate_audio="true"), "generate_audio", "invalid_type"),
    BadCase(
        "return-last-frame-int", base(return_last_frame=1), "return_last_frame", "invalid_type"
    ),
    BadCase("watermark-string", base(watermark="no"), "watermark", "invalid_type"),
    # seed
    BadCase("seed-bool", base(seed=False), "seed", "invalid_type"),
    BadCase("seed-fraction", base(seed=1.5), "seed", "invalid_type"),
    BadCase("seed-string-in-json", base(seed="42"), "seed", "invalid_type"),
    BadCase("seed-too-big", base(seed=2**32), "seed", "invalid_value"),
    BadCase("seed-too-small", base(seed=-2), "seed", "invalid_value"),
    # content: shape
    BadCase("content-object", base(content={"type": "image_url"}), "content", "invalid_type"),
    BadCase("content-bad-json-string", base(content="[{"), "content", "invalid_value"),
    BadCase("content-json-string-not-list", base(content='{"a": 1}'), "content", "invalid_type"),
    BadCase("content-item-not-object", base(content=[IMAGE]), "content[0]", "invalid_type"),
    BadCase(
        "content-item-missing-type",
        base(content=[{"image_url": {"url": IMAGE}, "role": "first_frame"}]),
        "content[0].type",
        "missing_required_parameter",
    ),
    BadCase(
        "content-text-item",
        base(content=[{"type": "text", "text": "hello"}]),
        "content[0].type",
        "invalid_value",
    ),
    BadCase(
        "content-unknown-type",
        base(content=[{"type": "file_url", "file_url": {"url": IMAGE}}]),
        "content[0].type",
        "invalid_value",
    ),
    BadCase(
        "content-type-not-string",
        base(content=[{"type": 1, "image_url": {"url": IMAGE}}]),
        "content[0].type",
        "invalid_type",
    ),
    BadCase(
        "content-unknown-item-key",
        base(content=[{**image(), "detail": "high"}]),
        "content[0].detail",
        "unknown_parameter",
    ),
    BadCase(
        "content-media-under-wrong-key",
        base(content=[image(), {"type": "video_url", "image_url": {"url": VIDEO}}]),
        "content[1].image_url",
        "unknown_parameter",
    ),
    BadCase(
        "content-media-object-missing",
        base(content=[{"type": "image_url", "role": "first_frame"}]),
        "content[0].image_url",
        "missing_required_parameter",
    ),
    BadCase(
        "content-media-not-object",
        base(content=[{"type": "image_url", "image_url": IMAGE, "role": "first_frame"}]),
        "content[0].image_url",
        "invalid_type",
    ),
    BadCase(
        "content-media-unknown-key",
        base(content=[{"type": "image_url", "image_url": {"url": IMAGE, "detail": "high"}}]),
        "content[0].image_url.detail",
        "unknown_parameter",
    ),
    BadCase(
        "content-url-missing",
        base(content=[{"type": "image_url", "image_url": {}, "role": "first_frame"}]),
        "content[0].image_url.url",
        "missing_required_parameter",
    ),
    BadCase(
        "content-url-not-string",
        base(content=[image(url=42)]),
        "content[0].image_url.url",
        "invalid_type",
    ),
    # content: URLs
    BadCase(
        "content-url-ftp",
        base(content=[image(url="ftp://example.com/a.jpg")]),
        "content[0].image_url.url",
        "invalid_value",
    ),
    BadCase(
        "content-url-no-host",
        base(content=[image(url="https://")]),
        "content[0].image_url.url",
        "invalid_value",
    ),
    BadCase(
        "content-url-relative",
        base(content=[image(), video(url="/videos/v.mp4")]),
        "content[1].video_url.url",
        "invalid_value",
    ),
    BadCase(
        "content-data-url-wrong-media",
        base(content=[image(url=f"data:video/mp4;base64,{PNG_B64}")]),
        "content[0].image_url.url",
        "invalid_value",
    ),
    BadCase(
        "content-data-url-bad-base64",
        base(content=[image(url="data:image/png;base64,not*base64!")]),
        "content[0].image_url.url",
        "invalid_value",
    ),
    BadCase(
        "content-data-url-not-base64",
        base(content=[image(url="data:image/png,rawbytes")]),
        "content[0].image_url.url",
        "invalid_value",
    ),
    BadCase(
        "content-data-url-empty",
        base(content=[audio(url="data:audio/mpeg;base64,")]),
        "content[0].audio_url.url",
        "invalid_value",
    ),
    # content: roles
    BadCase(
        "content-image-without-role",
        base(content=[image(role=None)]),
        "content[0].role",
        "missing_required_parameter",
    ),
    BadCase(
        "content-unknown-role",
        base(content=[image(role="style")]),
        "content[0].role",
        "invalid_value",
    ),
    BadCase(
        "content-role-not-string",
        base(content=[image(role=1)]),
        "content[0].role",
        "invalid_type",
    ),
    BadCase(
        "content-role-wrong-media",
        base(content=[video(role="first_frame")]),
        "content[0].role",
        "invalid_value",
    ),
    BadCase(
        "content-audio-as-reference-image",
        base(content=[audio(role="reference_image")]),
        "content[0].role",
        "invalid_value",
    ),
    BadCase(
        "content-reference-image-unsupported",
        base(model=V15, content=[image(role="reference_image")]),
        "content[0].role",
        "unsupported_value",
    ),
    # content: limits
    BadCase(
        "content-too-many-images",
        base(content=[image(role="reference_image") for _ in range(10)]),
        "content",
        "too_many_items",
    ),
    BadCase("content-too-many-videos", base(content=[video()] * 4), "content", "too_many_items"),
    BadCase("content-too-many-audios", base(content=[audio()] * 4), "content", "too_many_items"),
    BadCase(
        "content-two-first-frames",
        base(content=[image(), image()]),
        "content[1].role",
        "invalid_value",
    ),
    BadCase(
        "content-two-last-frames",
        base(content=[image(), image(role="last_frame"), image(role="last_frame")]),
        "content[2].role",
        "invalid_value",
    ),
    BadCase(
        "content-last-frame-alone",
        base(content=[video(), image(role="last_frame")]),
        "content[1].role",
        "invalid_value",
    ),
    # input_reference (JSON object form)
    BadCase(
        "input-reference-file-id",
        base(input_reference={"file_id": "file_123"}),
        "input_reference.file_id",
        "unsupported_feature",
    ),
    BadCase(
        "input-reference-both",
        base(input_reference={"image_url": IMAGE, "file_id": "file_123"}),
        "input_reference",
        "conflicting_parameters",
    ),
    BadCase("input-reference-empty", base(input_reference={}), "input_reference", "invalid_value"),
    BadCase(
        "input-reference-unknown-key",
        base(input_reference={"image_url": IMAGE, "detail": "high"}),
        "input_reference.detail",
        "unknown_parameter",
    ),
    BadCase(
        "input-reference-string", base(input_reference=IMAGE), "input_reference", "invalid_type"
    ),
    BadCase(
        "input-reference-url-not-string",
        base(input_reference={"image_url": {"url": IMAGE}}),
        "input_reference.image_url",
        "invalid_type",
    ),
    BadCase(
        "input-reference-bad-url",
        base(input_reference={"image_url": "file:///etc/passwd"}),
        "input_reference.image_url",
        "invalid_value",
    ),
    BadCase(
        "input-reference-video-data-url",
        base(input_reference={"image_url": f"data:video/mp4;base64,{PNG_B64}"}),
        "input_reference.image_url",
        "invalid_value",
    ),
    BadCase(
        "input-reference-and-first-frame",
        base(input_reference={"image_url": IMAGE}, content=[image()]),
        "input_reference",
        "conflicting_parameters",
    ),
]

FULL_CONTENT = [
    image("https://example.com/first.jpg", "first_frame"),
    image("https://example.com/last.jpg", "last_frame"),
    video("https://example.com/pov.mp4"),
    audio("https://example.com/music.mp3"),
]

GOOD_REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "minimal-defaults",
        {"model": V2_FAST, "prompt": "Rain on a window"},
        {
            "model": V2_FAST,
            "prompt": "Rain on a window",
            "content": [],
            "ratio": "16:9",
            "resolution": "720p",
            "duration": 5,
            "generate_audio": False,
            "return_last_frame": False,
            "watermark": False,
        },
    ),
    (
        "upstream-minimal-example",
        base(ratio="16:9", duration=8, watermark=False),
        {"ratio": "16:9", "duration": 8, "watermark": False},
    ),
    (
        "upstream-full-example",
        base(model=V2, duration=11, content=FULL_CONTENT, generate_audio=True, watermark=False),
        {"model": V2, "duration": 11, "content": FULL_CONTENT, "generate_audio": True},
    ),
    (
        "prompt-kept-verbatim",
        base(prompt="  Seconds 0-2: a boat \n"),
        {"prompt": "  Seconds 0-2: a boat \n"},
    ),
    ("prompt-at-limit", base(prompt="y" * 4000), {"prompt": "y" * 4000}),
    (
        "nulls-are-absent",
        base(ratio=None, seed=None, content=None),
        {"ratio": "16:9", "content": []},
    ),
    ("duration-integral-float", base(duration=5.0), {"duration": 5}),
    ("duration-bounds", base(duration=2), {"duration": 2}),
    ("duration-upper-bound", base(duration=15), {"duration": 15}),
    ("seconds-string", base(seconds="8"), {"duration": 8}),
    ("seconds-int", base(seconds=12), {"duration": 12}),
    ("seconds-equal-duration", base(seconds="8", duration=8), {"duration": 8}),
    ("size-landscape", base(size="1280x720"), {"ratio": "16:9", "resolution": "720p"}),
    ("size-portrait", base(size="720x1280"), {"ratio": "9:16", "resolution": "720p"}),
    ("size-square-480", base(size="480x480"), {"ratio": "1:1", "resolution": "480p"}),
    ("size-854x480", base(size="854x480"), {"ratio": "16:9", "resolution": "480p"}),
    ("size-4-3", base(size="960x720"), {"ratio": "4:3", "resolution": "720p"}),
    ("size-21-9-1080", base(model=V15, size="2520x1080"), {"ratio": "21:9", "resolution": "1080p"}),
    (
        "size-resolution-token",
        base(size="480p", ratio="9:16"),
        {"ratio": "9:16", "resolution": "480p"},
    ),
    (
        "size-agrees-with-explicit",
        base(size="1280x720", ratio="16:9", resolution="720p"),
        {"ratio": "16:9", "resolution": "720p"},
    ),
    (
        "ratio-and-resolution",
        base(ratio="3:4", resolution="480p"),
        {"ratio": "3:4", "resolution": "480p"},
    ),
    ("resolution-1080p", base(model=V10_FAST, resolution="1080p"), {"resolution": "1080p"}),
    (
        "booleans",
        base(generate_audio=True, return_last_frame=True, watermark=True),
        {"generate_audio": True, "return_last_frame": True, "watermark": True},
    ),
    ("seed", base(seed=42), {"seed": 42}),
    ("seed-zero", base(seed=0), {"seed": 0}),
    ("seed-max", base(seed=2**32 - 1), {"seed": 2**32 - 1}),
    ("seed-minus-one-is-random", base(seed=-1), {"content": []}),
    (
        "content-json-string",
        base(content=json.dumps([image()])),
        {"content": [image()]},
    ),
    (
        "content-default-roles",
        base(content=[video(role=None), audio(role=None)]),
        {"content": [video(), audio()]},
    ),
    (
        "content-order-kept",
        base(model=V2, content=[audio(), image(role="reference_image"), video(), image()]),
        {"content": [audio(), image(role="reference_image"), video(), image()]},
    ),
    (
        "content-max-media",
        base(model=V2, content=[image(role="reference_image")] * 9 + [video()] * 3 + [audio()] * 3),
        {"content": [image(role="reference_image")] * 9 + [video()] * 3 + [audio()] * 3},
    ),
    (
        "content-data-url",
        base(content=[image(url=f"data:image/png;base64,{PNG_B64}")]),
        {"content": [image(url=f"data:image/png;base64,{PNG_B64}")]},
    ),
    (
        "content-http-url",
        base(content=[image(url="http://127.0.0.1:8080/a.png")]),
        {"content": [image(url="http://127.0.0.1:8080/a.png")]},
    ),
    (
        "first-and-last-frame-on-1x",
        base(model=V15, content=[image(role="last_frame"), image()]),
        {"content": [image(role="last_frame"), image()]},
    ),
    (
        "input-reference-url-becomes-first-frame",
        base(input_reference={"image_url": IMAGE}, content=[image(role="last_frame")]),
        {"content": [image(), image(role="last_frame")]},
    ),
    (
        "input-reference-data-url",
        base(input_reference={"image_url": f"data:image/png;base64,{PNG_B64}"}),
        {"content": [image(url=f"data:image/png;base64,{PNG_B64}")]},
    ),
]
