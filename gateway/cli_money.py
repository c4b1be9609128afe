"""The ``gateway budgets``, ``gateway usage`` and ``gateway audit`` commands.

They open the store directly (no running server needed) and build the same reports as the
``/admin/`` API, so ``--json`` prints exactly what the API answers; tables show money with
``format_usd``. Exit codes: 0 done, 1 the audit found problems, 2 a bad argument (unknown team
or key, negative amount, ...; printed as ``error: ...`` by ``gateway.cli.main``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.cli_output import print_json as _print_json
from gateway.cli_output import print_table as _print_table
from gateway.domain.budgets import WINDOWS
from gateway.domain.money import format_usd
from gateway.settings import Settings
from gateway.store.base import Store, UsageRow

Action = Callable[[argparse.Namespace, Settings, Store], Awaitable[int]]
Runner = Callable[[Action], Callable[[argparse.Namespace, Settings], int]]

AUDIT_CLEAN = "audit clean: counters match the ledger"
BUDGET_COLUMNS = ("scope", "who", "window", "limit", "spent", "reserved", "remaining")
USAGE_COLUMNS = ("group", "spend", "reserved", "refunded", "videos", "seconds", "saved")


def register(sub: Any, run: Runner) -> None:
    """Add the money commands to ``gateway``'s subparsers; ``run`` opens a migrated store."""
    budgets = sub.add_parser("budgets", help="set, show and clear budget limits").add_subparsers(
        dest="action", required=True
    )
    set_ = budgets.add_parser("set", help="set (or replace) one limit")
    _owner_arguments(set_, required=True)
    set_.add_argument("--window", required=True, choices=WINDOWS)
    set_.add_argument("--usd", required=True, help="the limit in US dollars, e.g. 50 or 12.5")
    set_.set_defaults(handler=run(_budgets_set))

    show = budgets.add_parser("show", help="limits with this period's spend (all by default)")
    _owner_arguments(show, required=False)
    show.add_argument("--json", action="store_true", help="print the API's JSON instead")
    show.set_defaults(handler=run(_budgets_show))

    clear = budgets.add_parser("clear", help="remove one limit")
    _owner_arguments(clear, required=True)
    clear.add_argument("--window", required=True, choices=WINDOWS)
    clear.set_defaults(handler=run(_budgets_clear))

    usage = sub.add_parser("usage", help="a team's spend and videos, grouped")
    usage.add_argument("--team", required=True)
    usage.add_argument("--since", help="a UTC date YYYY-MM-DD (default: from the beginning)")
    usage.add_argument("--by", choices=("model", "key", "day"), default="model")
    usage.add_argument("--json", action="store_true", help="print the API's JSON instead")
    usage.set_defaults(handler=run(_usage))

    audit = sub.add_parser("audit", help="check the budget counters against the ledger")
    audit.add_argument("--team", help="only this team and its keys (cheap on a large ledger)")
    audit.add_argument("--month", help="with --team: only this UTC month, YYYY-MM")
    audit.set_defaults(handler=run(_audit))


def _owner_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    owner = parser.add_mutually_exclusive_group(required=required)
    owner.add_argument("--team", metavar="NAME", help="a team's budget")
    owner.add_argument("--key", metavar="KEY_ID", help="one key's budget")
    owner.add_argument("--org", action="store_true", help="the whole organization's budget")


def _owner_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The API's ``scope``/``team``/``key_id`` fields for ``--team``/``--key``/``--org``."""
    if args.org:
        return {"scope": "org"}
    if args.team is not None:
        return {"scope": "team", "team": args.team}
    if args.key is not None:
        return {"scope": "key", "key_id": args.key}
    return {}


ACTOR = "cli"


async def _budgets_set(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from gateway.services.budgets import BudgetService

    fields = {**_owner_fields(args), "window": args.window, "--usd": args.usd}
    status = await BudgetService(store, clock=args.clock).set(fields, actor=ACTOR, param="--usd")
    print(f"set {status.target.label} {args.window} limit: {format_usd(status.limit)}")
    return 0


async def _budgets_show(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from gateway.services.budgets import BudgetService
    from gateway.web.money_json import render_budgets

    statuses = await BudgetService(store, clock=args.clock).show(_owner_fields(args))
    if args.json:
        _print_json(render_budgets(statuses))
        return 0
    rows = [
        (
            status.target.ref.scope,
            status.target.who,
            status.window,
            format_usd(status.limit),
            format_usd(status.line.spent),
            format_usd(status.line.reserved),
            format_usd(status.remaining),
        )
        for status in statuses
    ]
    _print_table(BUDGET_COLUMNS, rows, text_columns=3)
    return 0


async def _budgets_clear(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from gateway.errors import NotFound
    from gateway.services.budgets import BudgetService

    fields = {**_owner_fields(args), "window": args.window}
    cleared = await BudgetService(store, clock=args.clock).clear(fields, actor=ACTOR)
    label = cleared.target.label
    if not cleared.cleared:
        raise NotFound(f"no {args.window} limit for {label}")
    print(f"cleared {label} {args.window} limit")
    return 0


async def _usage(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from gateway.services.usage import usage_report
    from gateway.web.money_json import render_usage

    report = await usage_report(store, args.team, args.since, args.by)
    if args.json:
        _print_json(render_usage(report))
        return 0
    rows = [_usage_cells(row) for row in report.rows]
    rows.append(_usage_cells(report.totals))
    _print_table(USAGE_COLUMNS, rows, text_columns=1)
    return 0


async def _audit(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from gateway.services.usage import audit_report

    problems = (await audit_report(store, args.team, args.month)).problems
    if not problems:
        print(AUDIT_CLEAN)
        return 0
    for problem in problems:
        print(problem)
    print(f"audit found {len(problems)} problem(s)", file=sys.stderr)
    return 1


def _usage_cells(row: UsageRow) -> tuple[str, ...]:
    return (
        row.group,
        format_usd(row.spent),
        format_usd(row.reserved),
        format_usd(row.refunded),
        str(row.videos),
        str(row.seconds),
        format_usd(row.saved),
    )
