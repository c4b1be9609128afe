"""Cache keys: equivalent requests share a key; any output-defining change, or scope, changes it."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Any

import pytest

from gateway.domain.cache_keys import (
    CACHE_KEY_VERSION,
    cache_key,
    canonical_request,
    is_cacheable,
)
from gateway.domain.catalog import default_catalog
from gateway.domain.requests import UploadedFile, parse_video_request
from gateway.domain.video_request import ContentItem, StoryboardSegment, VideoRequest
from gateway.errors import InvalidRequest

V2 = "doubao-seedance-2-0-260128"
V2_FAST = "doubao-seedance-2-0-fast-260128"
CATALOG = default_catalog({"seedance-fast": V2_FAST})
IMAGE = "https://example.com/a.jpg"
VIDEO = "https://example.com/v.mp4"
AUDIO = "https://example.com/m.mp3"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(201))  # 209 bytes: base64 ends in a single "="
PNG_B64 = base64.b64encode(PNG).decode()


def parse(body: dict[str, Any]) -> VideoRequest:
    return parse_video_request(body, CATALOG)


def key(request: VideoRequest, scope: Any = "team", scope_id: str = "team_1") -> str:
    return cache_key(request, scope=scope, scope_id=scope_id)


def body(**fields: Any) -> dict[str, Any]:
    return {"model": V2_FAST, "prompt": "A paper boat on a pond", "seed": 42, **fields}


def image(url: str = IMAGE, role: str = "first_frame") -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}, "role": role}


def data_url(b64: str, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{b64}"


def non_canonical(b64: str) -> str:
    """The same bytes in different base64 text: set the unused low bits before the padding."""
    assert b64.endswith("=") and not b64.endswith("==")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(b64[-2])
    assert last % 4 == 0  # two unused bits, all zero in the canonical form
    other = b64[:-2] + alphabet[last + 3] + "="
    assert other != b64 and base64.b64decode(other, validate=True) == base64.b64decode(b64)
    return other


# Equivalent requests


EQUIVALENT: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "key-order",
        body(ratio="9:16", duration=8),
        dict(reversed(body(ratio="9:16", duration=8).items())),
    ),
    (
        "explicit-defaults",
        body(),
        body(
            content=[],
            ratio="16:9",
            resolution="720p",
            duration=5,
            generate_audio=False,
            return_last_frame=False,
            watermark=False,
        ),
    ),
    ("nulls-are-absent", body(), body(content=None, ratio=None, duration=None, watermark=None)),
    ("seconds-vs-duration", body(seconds="8"), body(duration=8)),
    ("seconds-and-duration", body(seconds="8", duration=8), body(duration=8)),
    ("integral-float-duration", body(duration=8.0), body(duration=8)),
    ("size-vs-ratio-resolution", body(size="1280x720"), body(ratio="16:9", resolution="720p")),
    ("portrait-size", body(size="720x1280"), body(ratio="9:16")),
    ("480p-size", body(size="854x480"), body(resolution="480p")),
    ("bare-resolution-size", body(size="480p"), body(resolution="480p")),
    ("alias-vs-id", body(model="seedance-fast"), body(model=V2_FAST)),
    (
        "base64-trailing-bits",
        body(content=[image(data_url(PNG_B64))]),
        body(content=[image(data_url(non_canonical(PNG_B64)))]),
    ),
    (
        "media-type-case",
        body(content=[image(data_url(PNG_B64, "image/png"))]),
        body(content=[image(data_url(PNG_B64, "IMAGE/PNG"))]),
    ),
    (
        "data-url-parameters",
        body(content=[image(data_url(PNG_B64))]),
        body(content=[image(f"data:image/png;name=boat.png;base64,{PNG_B64}")]),
    ),
    (
        "input-reference-vs-first-frame",
        body(input_reference={"image_url": IMAGE}),
        body(content=[image(IMAGE)]),
    ),
    (
        "input-reference-upload-vs-data-url",
        body(input_reference=UploadedFile("boat.png", "image/png", PNG)),
        body(content=[image(data_url(PNG_B64))]),
    ),
    (
        "default-video-role",
        body(content=[{"type": "video_url", "video_url": {"url": VIDEO}}]),
        body(
            content=[{"type": "video_url", "video_url": {"url": VIDEO}, "role": "reference_video"}]
        ),
    ),
]


@pytest.mark.parametrize(
    ("first", "second"), [c[1:] for c in EQUIVALENT], ids=[c[0] for c in EQUIVALENT]
)
def test_equivalent_requests_share_a_key(first: dict[str, Any], second: dict[str, Any]):
    assert key(parse(first)) == key(parse(second))


def test_the_parser_rejects_line_wrapped_base64():
    # So line wrapping never reaches a key through the API; canonical_request still ignores it.
    wrapped = "\n".join(PNG_B64[i : i + 76] for i in range(0, len(PNG_B64), 76))
    with pytest.raises(InvalidRequest):
        parse(body(content=[image(data_url(wrapped))]))


@pytest.mark.parametrize(
    "variant",
    [
        "\n".join(PNG_B64[i : i + 76] for i in range(0, len(PNG_B64), 76)),
        "\r\n".join(PNG_B64[i : i + 64] for i in range(0, len(PNG_B64), 64)) + "\r\n",
        PNG_B64.rstrip("="),
        non_canonical(PNG_B64),
    ],
    ids=["lf-76", "crlf-64", "no-padding", "trailing-bits"],
)
def test_data_urls_are_keyed_by_their_decoded_bytes(variant: str):
    plain = VideoRequest(
        model=V2,
        prompt="p",
        content=(ContentItem("image_url", data_url(PNG_B64), "first_frame"),),
        seed=1,
    )
    other = dataclasses.replace(
        plain, content=(ContentItem("image_url", data_url(variant), "first_frame"),)
    )
    assert key(plain) == key(other)
    item = canonical_request(other)["content"][0]
    assert item == {
        "type": "image_url",
        "role": "first_frame",
        "url": f"sha256:{hashlib.sha256(PNG).hexdigest()}",
        "media_type": "image/png",
    }


@pytest.mark.parametrize("position", [0, 8, 100, len(PNG) - 1])
def test_one_changed_byte_in_a_data_url_changes_the_key(position: int):
    changed = bytearray(PNG)
    changed[position] ^= 0x01
    original = parse(body(content=[image(data_url(PNG_B64))]))
    altered = parse(body(content=[image(data_url(base64.b64encode(changed).decode()))]))
    assert key(original) != key(altered)


def test_the_media_type_of_a_data_url_is_part_of_the_key():
    png = parse(body(content=[image(data_url(PNG_B64, "image/png"))]))
    jpeg = parse(body(content=[image(data_url(PNG_B64, "image/jpeg"))]))
    assert key(png) != key(jpeg)


def test_an_http_url_is_kept_exactly():
    request = parse(body(content=[image("https://example.com/a.jpg?x=1")]))
    assert canonical_request(request)["content"] == [
        {"type": "image_url", "role": "first_frame", "url": "https://example.com/a.jpg?x=1"}
    ]
    other = parse(body(content=[image("https://example.com/a.jpg?x=2")]))
    assert key(request) != key(other)


# Every output-defining field changes the key


BASE = VideoRequest(
    model=V2,
    prompt="Seconds 0-2: a paper boat",
    content=(
        ContentItem("image_url", IMAGE, "first_frame"),
        ContentItem("video_url", VIDEO, "reference_video"),
    ),
    ratio="16:9",
    resolution="720p",
    duration=5,
    generate_audio=False,
    return_last_frame=False,
    watermark=False,
    seed=42,
)
FIRST, REF_VIDEO = BASE.content
AUDIO_ITEM = ContentItem("audio_url", AUDIO, "reference_audio")

CHANGES: list[tuple[str, str, Any]] = [
    ("model", "other-model", V2_FAST),
    ("prompt", "trailing-space", "Seconds 0-2: a paper boat "),
    ("prompt", "case", "seconds 0-2: a paper boat"),
    ("prompt", "unicode-nfd", "Seconds 0-2: a paper boa\u0074\u0301"),
    ("content", "url", (ContentItem("image_url", IMAGE + "?v=2", "first_frame"), REF_VIDEO)),
    ("content", "role", (ContentItem("image_url", IMAGE, "reference_image"), REF_VIDEO)),
    ("content", "type", (FIRST, ContentItem("audio_url", VIDEO, "reference_video"))),
    ("content", "order", (REF_VIDEO, FIRST)),
    ("content", "extra-item", (FIRST, REF_VIDEO, AUDIO_ITEM)),
    ("content", "dropped-item", (FIRST,)),
    ("content", "empty", ()),
    ("ratio", "ratio", "9:16"),
    ("resolution", "resolution", "480p"),
    ("duration", "duration", 6),
    ("generate_audio", "generate_audio", True),
    ("return_last_frame", "return_last_frame", True),
    ("watermark", "watermark", True),
    ("seed", "other-seed", 43),
    ("seed", "zero-seed", 0),
    ("seed", "unseeded", None),
    ("segments", "storyboard", (StoryboardSegment("a", 8), StoryboardSegment("b", 8))),
]


def test_every_videorequest_field_is_covered_by_a_change():
    fields = {f.name for f in dataclasses.fields(VideoRequest)}
    assert {name for name, _, _ in CHANGES} == fields
    # A storyboard is keyed only when present: other requests keep the keys they had.
    assert set(canonical_request(BASE)) == fields - {"segments"}
    storyboard = dataclasses.replace(BASE, segments=(StoryboardSegment("a", 8),) * 2)
    assert set(canonical_request(storyboard)) == fields
    other = dataclasses.replace(
        BASE, segments=(StoryboardSegment("a", 8), StoryboardSegment("c", 8))
    )
    assert key(storyboard) != key(other)


@pytest.mark.parametrize(
    ("field", "value"), [c[::2] for c in CHANGES], ids=[f"{c[0]}-{c[1]}" for c in CHANGES]
)
def test_any_field_change_changes_the_key(field: str, value: Any):
    changed = dataclasses.replace(BASE, **{field: value})
    assert key(changed) != key(BASE)


def test_content_order_matters_through_the_parser():
    a = parse(
        body(
            model=V2,
            content=[image(IMAGE, "reference_image"), image(IMAGE + "2", "reference_image")],
        )
    )
    b = parse(
        body(
            model=V2,
            content=[image(IMAGE + "2", "reference_image"), image(IMAGE, "reference_image")],
        )
    )
    assert key(a) != key(b)


# Scope and format


def test_scope_and_scope_id_change_the_key():
    keys = {
        key(BASE, "team", "team_1"),
        key(BASE, "team", "team_2"),
        key(BASE, "key", "team_1"),
        key(BASE, "key", "key_1"),
        key(BASE, "org", "team_1"),
        key(BASE, "org", "org"),
    }
    assert len(keys) == 6


def test_the_key_format_is_pinned():
    document = {
        "v": 1,
        "scope": "team",
        "scope_id": "team_1",
        "request": {
            "model": V2,
            "prompt": "Seconds 0-2: a paper boat",
            "content": [
                {"type": "image_url", "role": "first_frame", "url": IMAGE},
                {"type": "video_url", "role": "reference_video", "url": VIDEO},
            ],
            "ratio": "16:9",
            "resolution": "720p",
            "duration": 5,
            "generate_audio": False,
            "return_last_frame": False,
            "seed": 42,
            "watermark": False,
        },
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = "v1:" + hashlib.sha256(text.encode()).hexdigest()
    assert CACHE_KEY_VERSION == 1
    assert key(BASE) == expected
    assert len(expected) == 3 + 64


def test_non_ascii_prompts_hash_as_utf8_and_lone_surrogates_do_not_crash():
    request = dataclasses.replace(BASE, prompt="纸船 🚣 café")
    canonical = {"v": 1, "scope": "team", "scope_id": "t", "request": canonical_request(request)}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert "纸船 🚣 café" in text
    assert key(request, "team", "t") == "v1:" + hashlib.sha256(text.encode()).hexdigest()
    lone = parse(body(prompt=json.loads('"boat \\ud800"')))
    assert key(lone).startswith("v1:")
    assert key(lone) != key(dataclasses.replace(lone, prompt="boat \ufffd"))


def test_the_key_survives_a_storage_round_trip():
    request = parse(
        body(content=[image(data_url(PNG_B64)), {"type": "video_url", "video_url": {"url": VIDEO}}])
    )
    assert key(VideoRequest.from_json(json.loads(json.dumps(request.to_json())))) == key(request)


# Cacheability


def test_seeded_requests_are_cacheable():
    assert is_cacheable(parse(body(seed=42)))
    assert is_cacheable(parse(body(seed=0)))  # 0 is a seed, not "no seed"
    assert is_cacheable(parse(body(seed=2**32 - 1)))


@pytest.mark.parametrize("fields", [{"seed": None}, {"seed": -1}, {}])
def test_unseeded_requests_are_cacheable_only_when_included(fields: dict[str, Any]):
    request = parse({"model": V2, "prompt": "p", **fields})
    assert request.seed is None
    assert not is_cacheable(request)
    assert is_cacheable(request, include_unseeded=True)


def test_seed_minus_one_and_no_seed_share_a_key():
    assert key(parse(body(seed=-1))) == key(parse(body(seed=None)))
