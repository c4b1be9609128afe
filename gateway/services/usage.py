"""Usage reports and the ledger audit as use cases, shared by ``/admin/usage``/``/admin/audit``,
``gateway usage``/``gateway audit`` and the dashboard. Results are dataclasses each caller
renders; validation errors name their parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.errors import InvalidRequest, NotFound
from gateway.services.budgets import missing
from gateway.store.base import Store, Team, UsageRow

USAGE_GROUPS = ("model", "key", "day")


@dataclass(frozen=True, slots=True)
class UsageReport:
    """A team's money and videos since a UTC date (None: the beginning), grouped ``by``."""

    team: Team
    since: str | None
    by: str
    rows: list[UsageRow]
    totals: UsageRow


@dataclass(frozen=True, slots=True)
class AuditReport:
    problems: list[str]

    @property
    def clean(self) -> bool:
        return not self.problems


def parse_since(value: str | None) -> float:
    """A UTC date ``YYYY-MM-DD`` as the Unix time of its midnight; None: the beginning."""
    if value is None:
        return 0.0
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(
            f"since must be a UTC date YYYY-MM-DD; got {value!r}.", param="since"
        ) from None
    return day.timestamp()


def parse_usage_group(value: str | None) -> str:
    if value is None:
        return "model"
    if value not in USAGE_GROUPS:
        raise InvalidRequest(
            f"by must be one of {', '.join(USAGE_GROUPS)}; got {value!r}.", param="by"
        )
    return value


def total_of(rows: list[UsageRow]) -> UsageRow:
    return UsageRow(
        group="total",
        spent=sum(r.spent for r in rows),
        reserved=sum(r.reserved for r in rows),
        refunded=sum(r.refunded for r in rows),
        videos=sum(r.videos for r in rows),
        seconds=sum(r.seconds for r in rows),
        saved=sum(r.saved for r in rows),
        videos_saved=sum(r.videos_saved for r in rows),
    )


async def usage_report(
    store: Store, team_name: str | None, since: str | None, by: str | None
) -> UsageReport:
    if team_name is None:
        raise missing("team")
    team = await store.team_by_name(team_name)
    if team is None:
        raise NotFound(f"No team named {team_name!r}.", param="team")
    group = parse_usage_group(by)
    rows = await store.usage(team.id, since=parse_since(since), by=group)
    return UsageReport(team=team, since=since, by=group, rows=rows, totals=total_of(rows))


async def audit_report(
    store: Store, team_name: str | None = None, month: str | None = None
) -> AuditReport:
    """The whole ledger against every counter; with ``team_name`` only that team and its keys
    (with ``month`` = ``YYYY-MM``, only that month's day and month windows): a check whose cost
    does not grow with the other teams' history (bench/README.md, "Scale")."""
    if team_name is None:
        if month is not None:
            raise InvalidRequest("month needs a team.", param="month")
        return AuditReport(problems=await store.audit())
    team = await store.team_by_name(team_name)
    if team is None:
        raise NotFound(f"No team named {team_name!r}.", param="team")
    return AuditReport(problems=await store.audit_team(team.id, parse_month(month)))


def parse_month(value: str | None) -> str | None:
    """A UTC month ``YYYY-MM`` (as the ledger files it), or None."""
    if value is None:
        return None
    try:
        datetime.strptime(value, "%Y-%m")
    except ValueError:
        raise InvalidRequest(f"month must be YYYY-MM; got {value!r}.", param="month") from None
    if len(value) != 7:
        raise InvalidRequest(f"month must be YYYY-MM; got {value!r}.", param="month")
    return value
