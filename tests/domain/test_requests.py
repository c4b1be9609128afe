"""parse_video_request: shared good/bad cases, form-mode coercion, the SDK's captured requests."""

from __future__ import annotations

import base64
import dataclasses
import email
import email.policy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.catalog import Catalog, ModelSpec, default_catalog
from gateway.domain.requests import UploadedFile, parse_video_request
from gateway.domain.video_request import ContentItem, VideoRequest
from gateway.errors import InvalidRequest, UnsupportedFeature
from gateway.web.forms import rebuild_form
from tests.cases import (
    BAD_REQUESTS,
    GOOD_REQUESTS,
    IMAGE,
    PNG_B64,
    V2,
    V2_FAST,
    V15,
    BadCase,
    base,
    image,
    video,
)

REPO = Path(__file__).parents[2]
# Captured from the official SDK (a copy of shared/fixtures/openai-python-sdk/).
FIXTURES = REPO / "tests" / "fixtures" / "openai-python-sdk"
CATALOG = default_catalog()
PNG = b"\x89PNG\r\n\x1a\nfakepng"


def parse(body: Any, **kwargs: Any) -> VideoRequest:
    return parse_video_request(body, CATALOG, **kwargs)


def rejection(body: Any, **kwargs: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse(body, **kwargs)
    return info.value


# --- the shared cases --------------------------------------------------------------------------


def test_there_are_at_least_45_distinct_bad_cases() -> None:
    assert len({case.id for case in BAD_REQUESTS}) == len(BAD_REQUESTS) >= 45
    assert len({json.dumps(case.body, sort_keys=True) for case in BAD_REQUESTS}) == len(
        BAD_REQUESTS
    )


def test_cases_use_only_default_models() -> None:
    for case in BAD_REQUESTS:
        model = case.body.get("model")
        assert model in (None, 123, "sora-2") or CATALOG.resolve(model) is not None, case.id


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=lambda case: case.id)
def test_bad_request_is_rejected_with_exact_param_and_code(case: BadCase) -> None:
    error = rejection(case.body)
    assert (error.param, error.code) == (case.param, case.code), error.message
    assert error.status == 400
    assert error.message
    if case.param is not None and case.code != "unsupported_feature":
        assert case.param.split(".")[-1].split("[")[0] in error.message


@pytest.mark.parametrize(("case_id", "body", "expected"), GOOD_REQUESTS, ids=lambda v: str(v)[:40])
def test_good_request_normalizes(
    case_id: str, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    result = parse(body).to_json()
    assert {key: result.get(key) for key in expected} == expected, case_id
    assert VideoRequest.from_json(result).to_json() == result


def test_seed_minus_one_means_random() -> None:
    assert parse(base(seed=-1)).seed is None
    assert "seed" not in parse(base()).to_json()


def test_result_is_frozen() -> None:
    request = parse(base())
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.prompt = "other"  # type: ignore[misc]


# --- special inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [[], "text", 5, None])
def test_body_must_be_an_object(body: Any) -> None:
    error = rejection(body)
    assert (error.param, error.code) == (None, "invalid_type")


def test_model_not_found_lists_known_models() -> None:
    error = rejection(base(model="sora-2"))
    assert V2 in error.message and V15 in error.message


def test_aliases_resolve_to_the_model_id() -> None:
    catalog = default_catalog({"seedance": V2_FAST})
    request = parse_video_request(base(model="seedance"), catalog)
    assert request.model == V2_FAST


def test_unknown_fields_may_be_ignored() -> None:
    body = base(fps=24, content=[{**image(), "detail": "x"}], input_reference=None)
    request = parse(body, reject_unknown_fields=False)
    assert request.content == (ContentItem("image_url", IMAGE, "first_frame"),)


def test_defaults_come_from_the_model() -> None:
    spec = ModelSpec("m", ("1080p",), min_duration=8, default_watermark=True)
    request = parse_video_request({"model": "m", "prompt": "p"}, Catalog(models={"m": spec}))
    assert (request.resolution, request.duration, request.watermark) == ("1080p", 8, True)


def test_duration_bounds_come_from_the_model() -> None:
    catalog = Catalog(models={"m": ModelSpec("m", ("720p",), min_duration=4)})
    with pytest.raises(InvalidRequest) as info:
        parse_video_request({"model": "m", "prompt": "p", "duration": 3}, catalog)
    assert (info.value.param, info.value.code) == ("duration", "invalid_value")
    assert "between 4 and 15" in info.value.message


def test_unsupported_resolution_names_what_the_model_supports() -> None:
    error = rejection(base(resolution="1080p"))
    assert "480p, 720p" in error.message


def test_file_id_is_an_unsupported_feature() -> None:
    with pytest.raises(UnsupportedFeature):
        parse(base(input_reference={"file_id": "file_1"}))


def test_text_item_points_to_prompt() -> None:
    assert "prompt" in rejection(base(content=[{"type": "text", "text": "x"}])).message


# --- form mode -----------------------------------------------------------------------------------


def form(**fields: Any) -> dict[str, Any]:
    return {"model": V2_FAST, "prompt": "p", **fields}


@pytest.mark.parametrize(
    ("fields", "attribute", "value"),
    [
        ({"duration": "5"}, "duration", 5),
        ({"duration": "7.0"}, "duration", 7),
        ({"seconds": "8"}, "duration", 8),
        ({"seed": "42"}, "seed", 42),
        ({"seed": "-1"}, "seed", None),
        ({"generate_audio": "true"}, "generate_audio", True),
        ({"return_last_frame": "false"}, "return_last_frame", False),
        ({"watermark": "True"}, "watermark", True),
    ],
)
def test_form_mode_coerces_text(fields: dict[str, Any], attribute: str, value: Any) -> None:
    assert getattr(parse(form(**fields), from_form=True), attribute) == value


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"duration": "5.5"}, "duration"),
        ({"duration": "five"}, "duration"),
        ({"duration": ""}, "duration"),
        ({"seed": "1e3"}, "seed"),
        ({"watermark": "yes"}, "watermark"),
        ({"generate_audio": "1"}, "generate_audio"),
        ({"prompt": UploadedFile("p.txt", "text/plain", b"p")}, "prompt"),
    ],
)
def test_form_mode_rejects_other_text(fields: dict[str, Any], param: str) -> None:
    error = rejection(form(**fields), from_form=True)
    assert (error.param, error.code) == (param, "invalid_type")


def test_form_mode_range_checks_still_apply() -> None:
    error = rejection(form(duration="30"), from_form=True)
    assert (error.param, error.code) == ("duration", "invalid_value")


def test_input_reference_file_becomes_first_frame_before_content() -> None:
    upload = UploadedFile("ref.png", "image/png", PNG)
    request = parse(
        form(input_reference=upload, content=[image(role="last_frame"), video()]), from_form=True
    )
    assert request.content == (
        ContentItem("image_url", f"data:image/png;base64,{PNG_B64}", "first_frame"),
        ContentItem("image_url", IMAGE, "last_frame"),
        ContentItem("video_url", "https://example.com/v.mp4", "reference_video"),
    )


def test_content_indexes_stay_the_clients_after_input_reference() -> None:
    upload = UploadedFile("ref.png", "image/png", PNG)
    body = form(input_reference=upload, content=[image(role="last_frame")] * 2)
    error = rejection(body, from_form=True)
    assert (error.param, error.code) == ("content[1].role", "invalid_value")


def test_input_reference_counts_towards_the_image_limit() -> None:
    upload = UploadedFile("ref.png", "image/png", PNG)
    body = form(model=V2, input_reference=upload, content=[image(role="reference_image")] * 9)
    error = rejection(body, from_form=True)
    assert (error.param, error.code) == ("content", "too_many_items")


@pytest.mark.parametrize(
    ("upload", "code"),
    [
        (UploadedFile("a.mp4", "video/mp4", b"data"), "invalid_value"),
        (UploadedFile("a.png", "application/octet-stream", PNG), "invalid_value"),
        (UploadedFile("a.png", "image/png", b""), "invalid_value"),
    ],
)
def test_input_reference_file_must_be_an_image(upload: UploadedFile, code: str) -> None:
    error = rejection(form(input_reference=upload), from_form=True)
    assert (error.param, error.code) == ("input_reference", code)


def test_input_reference_file_conflicts_with_first_frame() -> None:
    upload = UploadedFile("ref.png", "image/png", PNG)
    error = rejection(form(input_reference=upload, content=[image()]), from_form=True)
    assert (error.param, error.code) == ("input_reference", "conflicting_parameters")


# --- the OpenAI Python SDK's captured requests ---------------------------------------------------


def read_fixture(name: str) -> tuple[dict[str, str], bytes]:
    assert FIXTURES.is_dir(), f"SDK fixtures not found at {FIXTURES}"
    raw = (FIXTURES / name).read_bytes()
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")[1:]
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return headers, body


def multipart_parts(name: str) -> list[tuple[str, str | UploadedFile]]:
    """The fixture's parts in wire order, via the standard library's MIME parser."""
    headers, body = read_fixture(name)
    assert headers["content-type"].startswith("multipart/form-data")
    preamble = f"Content-Type: {headers['content-type']}\r\n\r\n".encode()
    message = email.message_from_bytes(preamble + body, policy=email.policy.HTTP)
    parts: list[tuple[str, str | UploadedFile]] = []
    for part in message.iter_parts():
        field = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        assert isinstance(field, str) and isinstance(data, bytes)
        filename = part.get_filename()
        if filename is None:
            parts.append((field, data.decode()))
        else:
            parts.append((field, UploadedFile(filename, part.get_content_type(), data)))
    return parts


def parse_fixture(name: str) -> VideoRequest:
    return parse(rebuild_form(multipart_parts(name)), from_form=True)


def test_fixture_01_minimal_with_seconds() -> None:
    assert parse_fixture("01-create-minimal.http") == VideoRequest(
        model=V2_FAST, prompt="Rain on a Tokyo window, neon reflections", duration=8
    )


def test_fixture_02_size_disagrees_with_resolution() -> None:
    # size=1280x720 means 720p while extra_body says resolution=1080p: a conflict, not a guess.
    with pytest.raises(InvalidRequest) as info:
        parse_fixture("02-create-scalar-extras.http")
    assert (info.value.param, info.value.code) == ("size", "conflicting_parameters")


def test_fixture_02_scalars_are_coerced() -> None:
    parts = [p for p in multipart_parts("02-create-scalar-extras.http") if p[0] != "size"]
    request = parse(rebuild_form(parts), from_form=True)
    assert request == VideoRequest(
        model="doubao-seedance-1-0-pro-fast-251015",
        prompt="A paper boat",
        ratio="16:9",
        resolution="1080p",
        duration=5,
        seed=42,
        watermark=False,
        generate_audio=True,
        return_last_frame=True,
    )


def test_fixture_03_flattened_content_is_ambiguous() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_fixture("03-create-content-list-multipart.http")
    error = info.value
    assert (error.status, error.param, error.code) == (400, "content", "ambiguous_multipart")
    assert 'extra_headers={"Content-Type": "application/json"}' in error.message
    assert "JSON-encoded string" in error.message


FULL_ITEMS = (
    ContentItem("image_url", "https://example.com/first.jpg", "first_frame"),
    ContentItem("image_url", "https://example.com/last.jpg", "last_frame"),
    ContentItem("video_url", "https://example.com/pov.mp4", "reference_video"),
    ContentItem("audio_url", "https://example.com/music.mp3", "reference_audio"),
)


def test_fixture_04_json_body() -> None:
    headers, body = read_fixture("04-create-content-list-json.http")
    assert headers["content-type"] == "application/json"
    assert parse(json.loads(body)) == VideoRequest(
        model=V2,
        prompt="Use Video 1 framing, Audio 1 as music",
        content=FULL_ITEMS,
        duration=11,
    )


def test_fixture_05_input_reference_file() -> None:
    request = parse_fixture("05-create-input-reference-file.http")
    assert request.model == V15
    assert request.content == (
        ContentItem(
            "image_url", "data:image/png;base64," + base64.b64encode(PNG).decode(), "first_frame"
        ),
    )


def test_fixture_06_content_as_json_string() -> None:
    request = parse_fixture("06-create-content-json-string.http")
    assert request == VideoRequest(
        model=V2,
        prompt="Image 1 opens",
        content=(ContentItem("image_url", "https://example.com/first.jpg", "first_frame"),),
    )


def test_regroupable_multipart_content_parses() -> None:
    parts: list[tuple[str, str | UploadedFile]] = [
        ("model", V2),
        ("prompt", "p"),
        ("content[][type]", "image_url"),
        ("content[][type]", "image_url"),
        ("content[][image_url][url]", "https://example.com/1.jpg"),
        ("content[][image_url][url]", "https://example.com/2.jpg"),
        ("content[][role]", "first_frame"),
        ("content[][role]", "reference_image"),
        ("duration", "6"),
    ]
    request = parse(rebuild_form(parts), from_form=True)
    assert request.content == (
        ContentItem("image_url", "https://example.com/1.jpg", "first_frame"),
        ContentItem("image_url", "https://example.com/2.jpg", "reference_image"),
    )
    assert request.duration == 6


# --- robustness: any JSON gives a VideoRequest or an InvalidRequest, never a crash ----------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELD = st.sampled_from(
    [
        "duration",
        "seconds",
        "size",
        "ratio",
        "resolution",
        "seed",
        "watermark",
        "content",
        "input_reference",
    ]
)
ITEM_KEY = st.sampled_from(["type", "role", "image_url", "video_url", "audio_url", "url"])


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(FIELD, JSON, max_size=4), from_form=st.booleans())
def test_any_json_fields_parse_or_reject_cleanly(fields: dict[str, Any], from_form: bool) -> None:
    try:
        request = parse(base(**fields), from_form=from_form)
    except InvalidRequest as error:
        assert error.status == 400 and error.message
    else:
        assert VideoRequest.from_json(request.to_json()) == request


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(
        st.dictionaries(ITEM_KEY, JSON | st.sampled_from(["image_url", "first_frame", IMAGE])),
        max_size=4,
    )
)
def test_any_content_items_parse_or_reject_cleanly(items: list[dict[str, Any]]) -> None:
    try:
        parse(base(content=items))
    except InvalidRequest as error:
        assert error.param is not None and error.param.startswith("content")
