"""The ``gateway limits`` commands: set, show and clear a team's or key's concurrency and rate
limits over the configured defaults (``[limits]``), straight on the database (no server needed).

``--json`` prints exactly what ``/admin/limits`` answers; the table shows the limits in force
(``none`` for no limit, ``(default)`` when it comes from the configuration) and the jobs in
flight now. Bad input prints ``error: ...`` and exits 2 (``gateway.cli.main``).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.cli_output import print_json, print_table
from gateway.settings import Settings
from gateway.store.base import Store

Action = Callable[[argparse.Namespace, Settings, Store], Awaitable[int]]
Runner = Callable[[Action], Callable[[argparse.Namespace, Settings], int]]

LIMIT_COLUMNS = ("scope", "who", "in_flight", "max_in_flight_jobs", "requests_per_minute")


def register(sub: Any, run: Runner) -> None:
    """Add ``gateway limits`` to the command's subparsers; ``run`` opens a migrated store."""
    limits = sub.add_parser(
        "limits", help="set, show and clear concurrency and rate limits"
    ).add_subparsers(dest="action", required=True)
    set_ = limits.add_parser("set", help="set a team's or key's own limits (0 = no limit)")
    _owner_arguments(set_, required=True)
    set_.add_argument("--max-in-flight-jobs", type=int, metavar="N")
    set_.add_argument("--requests-per-minute", type=int, metavar="N")
    set_.set_defaults(handler=run(_set))
    show = limits.add_parser("show", help="the defaults and every team's or key's own limits")
    _owner_arguments(show, required=False)
    show.add_argument("--json", action="store_true", help="print the API's JSON instead")
    show.set_defaults(handler=run(_show))
    clear = limits.add_parser("clear", help="forget a team's or key's own limits")
    _owner_arguments(clear, required=True)
    clear.set_defaults(handler=run(_clear))


def _owner_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    owner = parser.add_mutually_exclusive_group(required=required)
    owner.add_argument("--team", metavar="NAME", help="a team's limits")
    owner.add_argument("--key", metavar="KEY_ID", help="one key's limits")


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    return {"team": args.team, "key_id": args.key}


def _defaults(settings: Settings) -> Any:
    from gateway.app import traffic_defaults

    return traffic_defaults(settings)


async def _set(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from gateway.services.limits import set_limits

    fields = {
        **_fields(args),
        "max_in_flight_jobs": args.max_in_flight_jobs,
        "requests_per_minute": args.requests_per_minute,
    }
    item = await set_limits(store, _defaults(settings), fields)
    print(
        f"set {item['scope']} {item['name']} limits: max_in_flight_jobs"
        f" {_shown(item, 'max_in_flight_jobs')}, requests_per_minute"
        f" {_shown(item, 'requests_per_minute')}"
    )
    return 0


async def _show(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from gateway.services.limits import limits_report

    report = await limits_report(store, _defaults(settings), _fields(args))
    if args.json:
        print_json(report)
        return 0
    rows = [
        (
            "default",
            f"every {scope}",
            "",
            _value(values["max_in_flight_jobs"]),
            _value(values["requests_per_minute"]),
        )
        for scope, values in report["defaults"].items()
    ]
    rows += [
        (
            item["scope"],
            item["name"],
            str(item["in_flight_jobs"]),
            _shown(item, "max_in_flight_jobs"),
            _shown(item, "requests_per_minute"),
        )
        for item in report["data"]
    ]
    print_table(LIMIT_COLUMNS, rows, text_columns=2)
    return 0


async def _clear(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from gateway.services.limits import clear_limits

    await clear_limits(store, _fields(args))
    who = args.team if args.team is not None else args.key
    print(f"cleared the own limits of {'team' if args.team else 'key'} {who}; defaults apply")
    return 0


def _shown(item: dict[str, Any], name: str) -> str:
    """The limit in force, marked when it is the configured default."""
    value = _value(item[name])
    return value if item["own"][name] is not None else f"{value} (default)"


def _value(value: int | None) -> str:
    return "none" if not value else str(value)
