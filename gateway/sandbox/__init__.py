"""The sandbox upstream: a fast, faithful fake of AIHubMix's Seedance video API for local runs,
tests and benchmarks. Nothing else in the gateway may depend on it except wiring and tests."""

from __future__ import annotations

from gateway.sandbox.app import create_sandbox_app
from gateway.sandbox.config import SandboxConfig
from gateway.sandbox.faults import FaultRule
from gateway.sandbox.media import png_bytes_for, video_bytes_for
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
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "create_sandbox_app",
    "expected_last_frame_bytes",
    "expected_video_bytes",
    "png_bytes_for",
    "serve_sandbox",
    "video_bytes_for",
]
