"""The sandbox upstream: a fast, faithful fake of AIHubMix's Seedance video API for local runs,
tests and benchmarks. Nothing else in the gateway may depend on it except wiring and tests."""

from __future__ import annotations

from gateway.sandbox.app import create_sandbox_app
from gateway.sandbox.config import SandboxConfig
from gateway.sandbox.faults import FaultRule
from gateway.sandbox.media import video_bytes_for
from gateway.sandbox.render import RenderSpec, read_counter, render_mp4, still_png
from gateway.sandbox.server import SandboxServer, serve_sandbox
from gateway.sandbox.state import (
    Job,
    SandboxState,
    expected_last_frame_bytes,
    expected_video_bytes,
)

__all__ = [
    "FaultRule",
    "Job",
    "RenderSpec",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "create_sandbox_app",
    "expected_last_frame_bytes",
    "expected_video_bytes",
    "read_counter",
    "render_mp4",
    "serve_sandbox",
    "still_png",
    "video_bytes_for",
]
