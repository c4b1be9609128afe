"""The official ``openai`` SDK with a deadline on every wait.

The SDK's ``videos.poll`` (and ``create_and_poll``, which calls it) loops until the video ends,
with no deadline: a job that never finishes (a lease never reclaimed, a runner that died) hung the
test instead of failing it. ``DeadlineOpenAI`` is the same client whose waits raise
``PollDeadlineExceeded`` (an ``AssertionError``) once ``deadline_seconds`` have passed.
"""

from __future__ import annotations

import threading
import time
from functools import cached_property
from typing import Any

from openai import OpenAI
from openai._types import Omit, omit
from openai.resources.videos import Videos
from openai.types import Video

# Long enough for a job on a loaded 2-core machine (seconds of sandbox work), short enough
# that a hang fails well inside the per-test timeout (pyproject.toml, ``timeout``).
POLL_DEADLINE_SECONDS = 120.0


class PollDeadlineExceeded(AssertionError):
    """A video did not reach ``completed`` or ``failed`` before the poll's deadline."""


class DeadlineVideos(Videos):
    """``client.videos`` whose ``poll`` fails after ``deadline_seconds`` instead of looping."""

    def __init__(self, client: OpenAI, deadline_seconds: float) -> None:
        super().__init__(client)
        self.deadline_seconds = deadline_seconds
        self._wait = threading.local()  # one client may poll from several threads

    def poll(  # type: ignore[override]
        self,
        video_id: str,
        *,
        poll_interval_ms: int | Omit = omit,
        deadline_seconds: float | None = None,
    ) -> Video:
        seconds = self.deadline_seconds if deadline_seconds is None else deadline_seconds
        self._wait.deadline = time.monotonic() + seconds
        self._wait.what = f"video {video_id} did not finish within {seconds:g} s"
        try:
            return super().poll(video_id, poll_interval_ms=poll_interval_ms)
        finally:
            self._wait.deadline = None

    def _sleep(self, seconds: float) -> None:
        deadline = getattr(self._wait, "deadline", None)
        if deadline is not None and time.monotonic() + seconds > deadline:
            raise PollDeadlineExceeded(self._wait.what)
        time.sleep(seconds)


class DeadlineOpenAI(OpenAI):
    """``openai.OpenAI`` with ``videos.poll`` bounded by ``poll_deadline_seconds``."""

    def __init__(self, *, poll_deadline_seconds: float = POLL_DEADLINE_SECONDS, **kwargs: Any):
        super().__init__(**kwargs)
        self.poll_deadline_seconds = poll_deadline_seconds

    @cached_property
    def videos(self) -> DeadlineVideos:  # type: ignore[override]
        return DeadlineVideos(self, self.poll_deadline_seconds)


def sdk_client(base_url: str, key: str, **kwargs: Any) -> DeadlineOpenAI:
    """An SDK client for a gateway at ``base_url`` (no retries: tests see every answer)."""
    return DeadlineOpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, **kwargs)
