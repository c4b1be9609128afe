"""A scripted fake AIHubMix for ``httpx.MockTransport`` and a recording ``sleep``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

API_KEY = "sk-test-SECRETKEY0123456789abcdef"
BASE_URL = "https://aihubmix.test"

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Script:
    """Answers requests in the order given (a response, an exception to raise, or a function)
    and records every request it saw."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.requests: list[httpx.Request] = []

    def add(self, *answers: Answer) -> Script:
        self.answers.extend(answers)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.answers:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)


class Sleeps(list[float]):
    """The injected ``sleep``: records each wait instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "Aihubmix_api_error"}}
