"""The JSON shape of budgets, usage reports and audits, shared by the ``/admin/`` API and the
CLI's ``--json`` (so both print exactly the same). No Starlette here: the CLI imports it.
Amounts are shown twice: ``*_usd`` strings (``micros_to_usd_str``) and ``*_micros`` integers."""

from __future__ import annotations

from typing import Any

from gateway.domain.money import micros_to_usd_str
from gateway.services.budgets import BudgetStatus, ClearedBudget
from gateway.services.usage import AuditReport, UsageReport
from gateway.store.base import UsageRow


def render_budget(status: BudgetStatus) -> dict[str, Any]:
    target, line = status.target, status.line
    return {
        "object": "budget",
        "scope": target.ref.scope,
        "scope_id": target.ref.id,
        "name": target.name,
        "window": line.window,
        "period": status.period,
        "resets_at": status.resets_at,
        **_money("limit", status.limit),
        **_money("spent", line.spent),
        **_money("reserved", line.reserved),
        **_money("remaining", status.remaining),
    }


def render_budgets(statuses: list[BudgetStatus]) -> dict[str, Any]:
    return {"object": "list", "data": [render_budget(status) for status in statuses]}


def render_cleared(cleared: ClearedBudget) -> dict[str, Any]:
    return {
        "object": "budget.deleted",
        "scope": cleared.target.ref.scope,
        "scope_id": cleared.target.ref.id,
        "window": cleared.window,
        "deleted": True,
    }


def render_usage(report: UsageReport) -> dict[str, Any]:
    totals = render_usage_row(report.totals)
    del totals["group"]
    return {
        "object": "list",
        "team": report.team.name,
        "team_id": report.team.id,
        "since": report.since,
        "by": report.by,
        "data": [render_usage_row(row) for row in report.rows],
        "totals": totals,
    }


def render_usage_row(row: UsageRow) -> dict[str, Any]:
    return {
        "group": row.group,
        **_money("spent", row.spent),
        **_money("reserved", row.reserved),
        **_money("refunded", row.refunded),
        "videos": row.videos,
        "seconds": row.seconds,
        **_money("saved", row.saved),
        "videos_saved": row.videos_saved,
    }


def render_audit(report: AuditReport) -> dict[str, Any]:
    return {"clean": report.clean, "problems": report.problems}


def _money(name: str, micros: int) -> dict[str, Any]:
    return {f"{name}_usd": micros_to_usd_str(micros), f"{name}_micros": micros}
