"""The JSON documents the sandbox answers with: the create reply, the poll reply in each
``poll_shape`` x ``url_field`` variant, and the AIHubMix error envelope.

Pure functions from a job and the config to plain dicts; the routes serialize them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from gateway.domain.catalog import size_for
from gateway.sandbox.config import SandboxConfig
from gateway.sandbox.state import Job

# Our internal phase -> the word each poll shape uses for it.
STATUS_WORDS: Mapping[str, Mapping[str, str]] = {
    "openai": {
        "queued": "queued",
        "in_progress": "in_progress",
        "completed": "completed",
        "failed": "failed",
        "cancelled": "failed",
        "expired": "failed",
    },
    "ark": {
        "queued": "queued",
        "in_progress": "running",
        "completed": "succeeded",
        "failed": "failed",
        "cancelled": "cancelled",
        "expired": "expired",
    },
    "relay": {
        "queued": "pending",
        "in_progress": "processing",
        "completed": "succeeded",
        "failed": "failed",
        "cancelled": "failed",
        "expired": "failed",
    },
}


def error_envelope(message: str) -> dict[str, Any]:
    """AIHubMix's error body: the message carries a random trace id."""
    return {
        "error": {
            "message": f"{message} (tid: {os.urandom(8).hex()})",
            "type": "Aihubmix_api_error",
        }
    }


def create_document(job: Job) -> dict[str, Any]:
    """The HTTP 200 reply to an accepted ``POST /v1/videos``."""
    params = job.params
    return {
        "id": job.id,
        "object": "video",
        "model": params.model,
        "status": "queued",
        "progress": 0,
        "created_at": int(job.created_at),
        "seconds": str(params.duration),
        "duration": params.duration,
        "size": size_for(params.ratio, params.resolution),
    }


def poll_document(
    job: Job,
    now: float,
    config: SandboxConfig,
    *,
    video_url: str | None = None,
    last_frame_url: str | None = None,
    expires_at: float | None = None,
) -> dict[str, Any]:
    """The reply to ``GET /v1/videos/{id}`` at ``now``.

    For a completed job the caller passes the signed links and their expiry; they are placed
    per ``config.url_field`` (``none``: nowhere, the client must use ``/content``).
    """
    phase, progress = job.phase(now)
    params = job.params
    completed = phase == "completed"
    doc: dict[str, Any] = {
        "id": job.id,
        "object": "video",
        "model": params.model,
        "status": STATUS_WORDS[config.poll_shape][phase],
        "progress": progress,
        "created_at": int(job.created_at),
        "completed_at": int(job.finished_at) if completed else None,
        "expires_at": int(expires_at) if completed and expires_at is not None else None,
        "seconds": str(params.duration),
        "duration": params.duration,
        "size": size_for(params.ratio, params.resolution),
        "ratio": params.ratio,
        "resolution": params.resolution,
        "seed": job.seed,
        "error": job.error if phase in ("failed", "cancelled", "expired") else None,
    }
    if completed and video_url is not None:
        _place_urls(doc, config.url_field, video_url, last_frame_url)
    return doc


def _place_urls(doc: dict[str, Any], url_field: str, video: str, last_frame: str | None) -> None:
    if url_field == "content.video_url":
        content: dict[str, str] = {"video_url": video}
        if last_frame is not None:
            content["last_frame_url"] = last_frame
        doc["content"] = content
        return
    if url_field == "video_url":
        doc["video_url"] = video
    elif url_field == "url":
        doc["url"] = video
    elif url_field == "metadata.url":
        doc["metadata"] = {"url": video}
    if last_frame is not None:
        doc["last_frame_url"] = last_frame
