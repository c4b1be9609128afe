"""The browsing part of the persistence port (the operator's dashboard): what jobs are filtered
by, a ledger line, and the two read-only queries every adapter implements. Kept apart from
``base`` so that module stays small; ``Store`` includes ``BrowseStore``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.store.base import Job


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What an operator browses jobs by (every field optional; all given must match).
    ``created_from``/``created_to``: Unix seconds, ``to`` exclusive. Deleted jobs never."""

    team_id: str | None = None
    key_id: str | None = None
    model: str | None = None
    statuses: tuple[str, ...] = ()
    created_from: int | None = None
    created_to: int | None = None


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One movement of money for one scope (see the ``ledger`` table)."""

    kind: str
    scope: str
    scope_id: str
    reserved_delta: int
    spent_delta: int
    created_at: float


class BrowseStore(Protocol):
    async def find_jobs(
        self, where: JobFilter, *, before: str | None, limit: int
    ) -> tuple[list[Job], bool]:
        """A page of jobs across teams matching ``where``, newest first (ids below ``before``),
        and whether more follow. Rejected and deleted jobs are left out."""

    async def ledger_lines(self, job_id: str) -> list[LedgerLine]:
        """The job's money movements in the order they happened."""
