"""Injected misbehaviour: ``FaultRule`` (what goes wrong, for which operation, how often) and
``FaultBook`` (the ordered rules, consumed as requests arrive).

The book only decides *which* rule a request meets; the routes in ``app.py`` act it out. Pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPS: tuple[str, ...] = ("create", "poll", "content", "file", "delete", "any")
KINDS: tuple[str, ...] = (
    "latency",
    "status",
    "timeout",
    "truncate",
    "cut_file",
    "slow",
    "fail_job",
    "reject",
)
# Kinds that only make sense for some operations; the rest apply to every operation.
KIND_OPS: Mapping[str, frozenset[str]] = {
    "truncate": frozenset({"content", "file"}),
    "cut_file": frozenset({"content", "file"}),
    "slow": frozenset({"content", "file"}),
    "fail_job": frozenset({"create"}),
    "reject": frozenset({"create"}),
}
DEFAULT_DELAY: Mapping[str, float] = {"latency": 1.0, "timeout": 30.0, "slow": 0.05}
DEFAULT_MESSAGES: Mapping[int, str] = {
    429: "rate limit exceeded, please try again later",
    500: "no_valid_channel_error",
    502: "bad gateway",
    503: "service temporarily unavailable",
    504: "gateway timeout",
}


@dataclass(frozen=True)
class FaultRule:
    """One fault. ``times`` is how many matching requests it hits (0 = every one, forever),
    after letting ``after`` matching requests through untouched.

    kinds: ``latency`` (sleep ``delay`` then answer), ``status`` (answer HTTP ``status`` with an
    envelope, ``Retry-After: retry_after`` when set), ``timeout`` (sleep ``delay``, default 30 s,
    then answer), ``truncate`` (content/file: full Content-Length, connection cut after
    ``truncate_at`` bytes), ``cut_file`` (content/file: only the first ``truncate_at`` bytes,
    with a matching Content-Length: a truncated file delivered as if whole), ``slow`` (content/file: pause ``delay`` seconds, default 0.05,
    between 64 KiB chunks), ``fail_job`` (create: accept, then the job fails with
    ``error_code``/``error_message``), ``reject`` (create: 400 with ``message``).
    """

    op: str = "any"
    kind: str = "status"
    status: int = 500
    delay: float | None = None
    retry_after: int | None = None
    truncate_at: int = 0
    error_code: str = "InternalServiceError"
    error_message: str = "The service encountered an unexpected internal error."
    message: str | None = None
    times: int = 1
    after: int = 0

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if self.op != "any" and self.op not in KIND_OPS.get(self.kind, OPS):
            raise ValueError(f"a {self.kind} fault cannot apply to {self.op}")
        if not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if self.times < 0 or self.truncate_at < 0 or (self.delay is not None and self.delay < 0):
            raise ValueError("times, truncate_at and delay must not be negative")
        if self.after < 0:
            raise ValueError("after must not be negative")

    @classmethod
    def from_json(cls, data: Any) -> FaultRule:
        """A rule from decoded JSON; ``ValueError`` on unknown fields or wrong types."""
        if not isinstance(data, dict):
            raise ValueError("a fault rule must be a JSON object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, value in data.items():
            if name not in fields:
                raise ValueError(f"unknown fault field {name!r}")
            if not _type_ok(name, value):
                raise ValueError(f"fault field {name!r} has the wrong type")
        return cls(**data)

    def applies_to(self, op: str) -> bool:
        return (self.op == op or self.op == "any") and op in KIND_OPS.get(self.kind, OPS)

    @property
    def sleep_seconds(self) -> float:
        return self.delay if self.delay is not None else DEFAULT_DELAY.get(self.kind, 0.0)

    @property
    def status_message(self) -> str:
        if self.message is not None:
            return self.message
        if self.kind == "reject":
            return "the request was rejected by the sandbox"
        return DEFAULT_MESSAGES.get(self.status, f"upstream error {self.status}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_ok(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if name in ("status", "truncate_at", "times", "after"):
        return isinstance(value, int)
    if name == "retry_after":
        return value is None or isinstance(value, int)
    if name == "delay":
        return value is None or isinstance(value, int | float)
    if name == "message":
        return value is None or isinstance(value, str)
    return isinstance(value, str)


@dataclass
class _Entry:
    rule: FaultRule
    remaining: int  # 0 = unlimited
    skip: int = 0  # matching requests still to let through


class FaultBook:
    """The active rules in the order they were added; the first applicable one wins."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, rule: FaultRule) -> None:
        self._entries.append(_Entry(rule, rule.times, rule.after))

    def clear(self) -> None:
        self._entries.clear()

    def rules(self) -> list[FaultRule]:
        return [entry.rule for entry in self._entries]

    def take(self, op: str) -> FaultRule | None:
        """The rule this ``op`` request meets, if any, counting one use of it."""
        for index, entry in enumerate(self._entries):
            if entry.rule.applies_to(op):
                if entry.skip > 0:
                    entry.skip -= 1
                    continue
                if entry.remaining == 1:
                    del self._entries[index]
                elif entry.remaining > 1:
                    entry.remaining -= 1
                return entry.rule
        return None
