"""rebuild_form: bracket keys, lists, regrouping lists of objects, and the SDK's real requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import UploadFile
from starlette.requests import Request

from gateway.domain.requests import UploadedFile
from gateway.errors import InvalidRequest
from gateway.web.forms import rebuild_form

FIXTURES = Path(__file__).parents[1] / "fixtures" / "openai-python-sdk"
Parts = list[tuple[str, str | UploadedFile]]


def rejection(parts: Parts) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        rebuild_form(parts)
    return info.value


def test_plain_keys() -> None:
    assert rebuild_form([("model", "m"), ("prompt", "p"), ("duration", "5")]) == {
        "model": "m",
        "prompt": "p",
        "duration": "5",
    }


def test_nested_dicts() -> None:
    parts: Parts = [("metadata[b][c]", "true"), ("metadata[b][d]", "1"), ("metadata[e]", "x")]
    assert rebuild_form(parts) == {"metadata": {"b": {"c": "true", "d": "1"}, "e": "x"}}


def test_lists_keep_order() -> None:
    parts: Parts = [("tags[]", "x"), ("model", "m"), ("tags[]", "y"), ("a[b][]", "1")]
    assert rebuild_form(parts) == {"tags": ["x", "y"], "model": "m", "a": {"b": ["1"]}}


def test_files_are_kept() -> None:
    upload = UploadedFile("ref.png", "image/png", b"png")
    assert rebuild_form([("input_reference", upload)]) == {"input_reference": upload}


def test_list_of_objects_is_regrouped_when_every_key_occurs_equally() -> None:
    parts: Parts = [
        ("content[][type]", "image_url"),
        ("content[][type]", "image_url"),
        ("content[][image_url][url]", "https://example.com/1.jpg"),
        ("content[][image_url][url]", "https://example.com/2.jpg"),
        ("content[][role]", "first_frame"),
        ("content[][role]", "last_frame"),
    ]
    assert rebuild_form(parts) == {
        "content": [
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/1.jpg"},
                "role": "first_frame",
            },
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/2.jpg"},
                "role": "last_frame",
            },
        ]
    }


def test_single_object_list() -> None:
    parts: Parts = [("content[][type]", "video_url"), ("content[][video_url][url]", "u")]
    assert rebuild_form(parts) == {"content": [{"type": "video_url", "video_url": {"url": "u"}}]}


@pytest.mark.parametrize(
    "parts",
    [
        [
            ("content[][type]", "image_url"),
            ("content[][type]", "video_url"),
            ("content[][image_url][url]", "a"),
            ("content[][video_url][url]", "b"),
        ],
        [
            ("content[][type]", "image_url"),
            ("content[][type]", "image_url"),
            ("content[][role]", "x"),
        ],
        [("content[][tags][]", "a")],
        [("content[][image_url]", "a"), ("content[][image_url][url]", "b")],
    ],
)
def test_unregroupable_objects_are_ambiguous(parts: Parts) -> None:
    error = rejection(parts)
    assert (error.status, error.param, error.code) == (400, "content", "ambiguous_multipart")
    assert 'extra_headers={"Content-Type": "application/json"}' in error.message
    assert "JSON-encoded string" in error.message


def test_ambiguity_is_named_by_its_field() -> None:
    parts: Parts = [
        ("extra[items][][a]", "1"),
        ("extra[items][][b]", "1"),
        ("extra[items][][b]", "2"),
    ]
    assert rejection(parts).param == "extra.items"


@pytest.mark.parametrize(
    ("parts", "param"),
    [
        ([("model", "a"), ("model", "b")], "model"),
        ([("metadata[a]", "1"), ("metadata[a]", "2")], "metadata.a"),
        ([("a", "1"), ("a[b]", "2")], "a"),
        ([("a[b]", "2"), ("a", "1")], "a"),
        ([("tags", "x"), ("tags[]", "y")], "tags"),
        ([("content", "[]"), ("content[][type]", "image_url")], "content"),
    ],
)
def test_duplicates_are_rejected(parts: Parts, param: str) -> None:
    error = rejection(parts)
    assert (error.param, error.code) == (param, "duplicate_parameter")


def test_odd_names_are_kept_verbatim() -> None:
    assert rebuild_form([("a[b", "1"), ("]x", "2")]) == {"a[b": "1", "]x": "2"}


# --- through Starlette's own multipart parser, as the web layer reads them ------------------------


async def starlette_parts(name: str) -> Parts:
    assert FIXTURES.is_dir(), f"SDK fixtures not found at {FIXTURES}"
    head, body = (FIXTURES / name).read_bytes().split(b"\r\n\r\n", 1)
    headers = [
        (key.strip().lower(), value.strip())
        for key, value in (line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    ]
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/videos", "headers": headers}
    request = Request({**scope, "query_string": b""}, receive)
    parts: Parts = []
    async with request.form() as form:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                parts.append((key, UploadedFile(value.filename, value.content_type or "", data)))
            else:
                parts.append((key, value))
    return parts


async def test_sdk_scalars_become_a_flat_dict() -> None:
    assert rebuild_form(await starlette_parts("02-create-scalar-extras.http")) == {
        "prompt": "A paper boat",
        "model": "doubao-seedance-1-0-pro-fast-251015",
        "size": "1280x720",
        "resolution": "1080p",
        "ratio": "16:9",
        "duration": "5",
        "seed": "42",
        "watermark": "false",
        "generate_audio": "true",
        "return_last_frame": "true",
    }


async def test_sdk_flattened_content_list_is_ambiguous() -> None:
    error = rejection(await starlette_parts("03-create-content-list-multipart.http"))
    assert (error.param, error.code) == ("content", "ambiguous_multipart")


async def test_sdk_file_part() -> None:
    form = rebuild_form(await starlette_parts("05-create-input-reference-file.http"))
    assert form["input_reference"] == UploadedFile(
        "ref.png", "image/png", b"\x89PNG\r\n\x1a\nfakepng"
    )


async def test_sdk_content_json_string_stays_text() -> None:
    form = rebuild_form(await starlette_parts("06-create-content-json-string.http"))
    assert form["content"].startswith('[{"type": "image_url"')


NAMES = st.sampled_from(["a", "a[]", "a[b]", "a[][b]", "a[][c]", "a[b][]", "a[][b][]", "[x]", "b"])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.tuples(NAMES, st.text(max_size=3)), max_size=8))
def test_any_parts_rebuild_or_reject_cleanly(parts: Parts) -> None:
    try:
        rebuild_form(parts)
    except InvalidRequest as error:
        assert error.code in ("duplicate_parameter", "ambiguous_multipart")
