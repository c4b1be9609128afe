"""parse_job over every plausible poll shape, the status table, and error-body reading."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.upstream.job import UpstreamJob
from gateway.upstream.parsing import (
    MalformedJob,
    error_message_from_body,
    map_status,
    parse_job,
    strip_request_ids,
)

VIDEO = "https://cdn.example.com/v.mp4?X-Sig=abc"
FRAME = "https://cdn.example.com/last.png?X-Sig=abc"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[(w, "queued") for w in ("queued", "pending", "submitted", "created")],
        *[(w, "in_progress") for w in ("running", "processing", "in_progress", "generating")],
        *[(w, "completed") for w in ("succeeded", "success", "completed", "done")],
        *[
            (w, "failed")
            for w in ("failed", "failure", "error", "cancelled", "canceled", "expired")
        ],
        ("SUCCESS", "completed"),
        (" Running ", "in_progress"),
        ("IN-PROGRESS", "in_progress"),
        ("NOT_START", "queued"),
        ("weird_new_state", "in_progress"),
        ("", "in_progress"),
    ],
)
def test_map_status(raw: str, expected: str) -> None:
    assert map_status(raw) == expected


@pytest.mark.parametrize(
    "data",
    [
        {"video_url": VIDEO},
        {"url": VIDEO},
        {"output_url": VIDEO},
        {"content": {"video_url": VIDEO}},
        {"metadata": {"url": VIDEO}},
        {"data": {"video_url": VIDEO}},
        {"data": {"url": VIDEO}},
        {"data": [{"url": VIDEO}]},
        {"content": {"file_url": VIDEO}},
    ],
    ids=lambda d: next(iter(d)) + ("." + _inner_key(d) if _inner_key(d) else ""),
)
def test_video_url_found_in_every_shape(data: dict[str, Any]) -> None:
    job = parse_job({"id": "j1", "status": "succeeded", **data})
    assert job.video_url == VIDEO
    assert job.status == "completed"


def _inner_key(data: dict[str, Any]) -> str:
    inner = next(iter(data.values()))
    if isinstance(inner, dict):
        return str(next(iter(inner)))
    if isinstance(inner, list):
        return "0." + str(next(iter(inner[0])))
    return ""


def test_video_url_order_prefers_top_level() -> None:
    other = "https://other.example.com/v.mp4"
    job = parse_job({"id": "j", "video_url": VIDEO, "content": {"video_url": other}})
    assert job.video_url == VIDEO


@pytest.mark.parametrize(
    "data",
    [
        {"last_frame_url": FRAME},
        {"content": {"last_frame_url": FRAME}},
        {"metadata": {"last_frame_url": FRAME}},
    ],
)
def test_last_frame_url_found_in_every_shape(data: dict[str, Any]) -> None:
    assert parse_job({"id": "j", "status": "completed", **data}).last_frame_url == FRAME


@pytest.mark.parametrize(
    "url", ["s3://bucket/v.mp4", "/v1/videos/x/content", "ftp://h/v.mp4", "", "javascript:x"]
)
def test_only_http_urls_are_taken(url: str) -> None:
    job = parse_job({"id": "j", "status": "completed", "video_url": url, "last_frame_url": url})
    assert job.video_url is None
    assert job.last_frame_url is None


def test_http_url_falls_through_to_next_shape() -> None:
    job = parse_job({"id": "j", "video_url": "s3://b/k", "content": {"video_url": VIDEO}})
    assert job.video_url == VIDEO


@pytest.mark.parametrize(
    ("data", "raw"),
    [
        ({"status": "running"}, "running"),
        ({"task_status": "SUCCESS"}, "SUCCESS"),
        ({"data": {"status": "queued"}}, "queued"),
    ],
)
def test_status_found_in_every_shape(data: dict[str, Any], raw: str) -> None:
    job = parse_job({"id": "j", **data})
    assert job.raw_status == raw
    assert job.status == map_status(raw)


def test_missing_status_means_a_fresh_queued_job() -> None:
    job = parse_job({"id": "cgt-2026"})
    assert job == UpstreamJob(id="cgt-2026", status="queued", raw_status="", progress=0)


@pytest.mark.parametrize(
    ("status", "progress"),
    [("queued", 0), ("running", 50), ("succeeded", 100), ("failed", 100)],
)
def test_progress_defaults_by_status(status: str, progress: int) -> None:
    assert parse_job({"id": "j", "status": status}).progress == progress


@pytest.mark.parametrize(
    ("value", "expected"),
    [(37, 37), (37.9, 37), ("42", 42), ("42%", 42), (-5, 0), (250, 100), ("n/a", 50), (True, 50)],
)
def test_progress_is_read_and_clamped(value: object, expected: int) -> None:
    assert parse_job({"id": "j", "status": "running", "progress": value}).progress == expected


def test_completed_job_is_always_at_100() -> None:
    assert parse_job({"id": "j", "status": "completed", "progress": 90}).progress == 100


def test_error_object_is_read_and_tid_stripped() -> None:
    job = parse_job(
        {
            "id": "j",
            "status": "failed",
            "error": {
                "code": "OutputVideoSensitiveContentDetected",
                "message": "the output may contain sensitive content (tid: 2026051212000012345)",
            },
        }
    )
    assert job.status == "failed"
    assert job.error_code == "OutputVideoSensitiveContentDetected"
    assert job.error_message == "the output may contain sensitive content"


def test_string_error_becomes_the_message() -> None:
    job = parse_job({"id": "j", "status": "failed", "error": "content moderation"})
    assert job.error_code == "upstream_failed"
    assert job.error_message == "content moderation"


def test_numeric_error_code_becomes_text() -> None:
    job = parse_job({"id": "j", "status": "failed", "error": {"code": 1301, "message": "x"}})
    assert job.error_code == "1301"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("cancelled", "cancelled"),
        ("canceled", "canceled"),
        ("expired", "expired"),
        ("EXPIRED", "expired"),
        ("failed", "upstream_failed"),
        ("failure", "upstream_failed"),
        ("error", "upstream_failed"),
    ],
)
def test_failed_job_without_code(raw: str, code: str) -> None:
    job = parse_job({"id": "j", "status": raw})
    assert job.status == "failed"
    assert job.error_code == code
    assert job.error_message
    assert job.raw_status == raw


def test_failed_job_with_null_error_gets_defaults() -> None:
    job = parse_job({"id": "j", "status": "expired", "error": None})
    assert job.error_code == "expired"


def test_error_fields_stay_empty_on_success() -> None:
    job = parse_job({"id": "j", "status": "succeeded", "error": None})
    assert job.error_code is None
    assert job.error_message is None


@pytest.mark.parametrize(
    ("data", "duration"),
    [
        ({"duration": 8}, 8),
        ({"duration": "8"}, 8),
        ({"seconds": "5"}, 5),
        ({"seconds": 12}, 12),
        ({"duration": "5.0"}, 5),
        ({"duration": "soon"}, None),
        ({"duration": 0}, None),
        ({}, None),
    ],
)
def test_duration(data: dict[str, Any], duration: int | None) -> None:
    assert parse_job({"id": "j", **data}).duration == duration


def test_id_shapes_and_fallback() -> None:
    assert parse_job({"task_id": "t1"}).id == "t1"
    assert parse_job({"data": {"id": "d1"}}).id == "d1"
    assert parse_job({"id": 42}).id == "42"
    assert parse_job({"status": "running"}, fallback_id="fb").id == "fb"
    assert parse_job({"id": "own"}, fallback_id="fb").id == "own"


@pytest.mark.parametrize("data", [{}, {"status": "queued"}, {"id": ""}, {"id": None}])
def test_missing_id_is_malformed(data: dict[str, Any]) -> None:
    with pytest.raises(MalformedJob):
        parse_job(data)


def test_non_mapping_is_malformed() -> None:
    with pytest.raises(MalformedJob):
        parse_job(["not", "a", "job"])  # type: ignore[arg-type]


def test_request_echo_with_content_list_does_not_confuse_parsing() -> None:
    job = parse_job(
        {
            "id": "eyJtb2RlbCI6ImRvdWJhbyJ9channel2679",
            "object": "video",
            "status": "in_progress",
            "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
            "data": None,
        }
    )
    assert job.video_url is None
    assert job.status == "in_progress"


def test_ark_task_object() -> None:
    job = parse_job(
        {
            "id": "cgt-20260512",
            "model": "doubao-seedance-2-0-260128",
            "status": "succeeded",
            "content": {"video_url": VIDEO, "last_frame_url": FRAME},
            "usage": {"completion_tokens": 108900, "total_tokens": 108900},
            "duration": 5,
            "created_at": 1760000000,
        }
    )
    assert job == UpstreamJob(
        id="cgt-20260512",
        status="completed",
        raw_status="succeeded",
        progress=100,
        video_url=VIDEO,
        last_frame_url=FRAME,
        duration=5,
    )


def test_new_api_shape() -> None:
    job = parse_job(
        {
            "id": "task_abc",
            "task_id": "task_abc",
            "object": "video",
            "status": "completed",
            "progress": 100,
            "seconds": "5",
            "metadata": {"url": VIDEO},
        }
    )
    assert (job.video_url, job.duration, job.status) == (VIDEO, 5, "completed")


@pytest.mark.parametrize(
    ("message", "cleaned"),
    [
        ("no_valid_channel_error (tid: 2026051212345678)", "no_valid_channel_error"),
        ("Invalid token (request id: 20260512abc)", "Invalid token"),
        ("bad [trace_id=abc-123] thing", "bad thing"),
        ("balance is insufficient tid: 2026xyz", "balance is insufficient"),
        ("nothing to strip", "nothing to strip"),
    ],
)
def test_strip_request_ids(message: str, cleaned: str) -> None:
    assert strip_request_ids(message) == cleaned


def test_strip_request_ids_bounds_length() -> None:
    assert len(strip_request_ids("x" * 5000)) <= 500


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (
            b'{"error":{"message":"no key provided (tid: 1)","type":"x"}}',
            "application/json",
            "no key provided",
        ),
        (b'{"error":"plain error"}', "application/json", "plain error"),
        (b'{"message":"top level"}', "application/json", "top level"),
        (b'{"detail":"fastapi style"}', "", "fastapi style"),
        (b"upstream exploded", "text/plain", "upstream exploded"),
        (b"<html><body>502 Bad Gateway</body></html>", "text/html", None),
        (b"<html>", "", None),
        (b"", "", None),
        (b"{}", "application/json", None),
        (b"[1,2]", "application/json", None),
    ],
)
def test_error_message_from_body(body: bytes, content_type: str, message: str | None) -> None:
    assert error_message_from_body(body, content_type) == message
