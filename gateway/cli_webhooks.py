"""The ``gateway webhooks`` commands: add, list, disable, enable, rotate-secret, remove,
deliveries, resend, and the secret-key chores (new-key, reseal).

They open the store directly (no running server needed) and use the same ``WebhookService`` as
the APIs. A signing secret is printed once, alone on stdout (so ``$(gateway webhooks add ...)``
captures it); everything else goes to stderr or is a table. Exit codes as in ``gateway.cli``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from gateway.domain.webhooks import EVENT_TYPES
from gateway.errors import NotFound
from gateway.settings import Settings
from gateway.store.base import Store

Action = Callable[[argparse.Namespace, Settings, Store], Awaitable[int]]
Runner = Callable[[Action], Callable[[argparse.Namespace, Settings], int]]


def register(sub: Any, run: Runner) -> None:
    """Add ``gateway webhooks ...`` to the subparsers; ``run`` opens a migrated store."""
    hooks = sub.add_parser("webhooks", help="manage webhook endpoints").add_subparsers(
        dest="action", required=True
    )
    add = hooks.add_parser("add", help="register an endpoint; prints its signing secret once")
    add.add_argument("--team", required=True)
    add.add_argument("--url", required=True)
    add.add_argument("--name", default="default")
    add.add_argument(
        "--event-types",
        default=",".join(EVENT_TYPES),
        help=f"comma separated (default: {','.join(EVENT_TYPES)})",
    )
    add.set_defaults(handler=run(_add))
    listing = hooks.add_parser("list", help="list endpoints (never their secrets)")
    listing.add_argument("--team")
    listing.set_defaults(handler=run(_list))
    for name, helptext, action in (
        ("disable", "stop delivering to an endpoint (events keep queueing)", _disable),
        ("enable", "deliver again (resets the failure count)", _enable),
        ("remove", "delete an endpoint with its deliveries", _remove),
    ):
        command = hooks.add_parser(name, help=helptext)
        command.add_argument("endpoint_id")
        command.set_defaults(handler=run(action))
    rotate = hooks.add_parser("rotate-secret", help="new signing secret; prints it once")
    rotate.add_argument("endpoint_id")
    rotate.add_argument(
        "--keep-old", action="store_true", help="keep signing with the old secret too for 24 h"
    )
    rotate.set_defaults(handler=run(_rotate))
    shown = hooks.add_parser("deliveries", help="an endpoint's deliveries and their attempts")
    shown.add_argument("endpoint_id")
    shown.add_argument("--json", action="store_true", help="print the admin API's JSON instead")
    shown.set_defaults(handler=run(_deliveries))
    resend = hooks.add_parser("resend", help="queue a delivery again (same event, same id)")
    resend.add_argument("endpoint_id")
    resend.add_argument("delivery_id")
    resend.set_defaults(handler=run(_resend))
    hooks.add_parser("new-key", help="print a new key for GATEWAY_WEBHOOK_SECRET_KEY").set_defaults(
        handler=_new_key
    )
    hooks.add_parser(
        "reseal", help="re-encrypt every stored secret with the first configured key"
    ).set_defaults(handler=run(_reseal))


def _service(settings: Settings, store: Store) -> Any:
    from gateway.app_webhooks import check_webhook_settings
    from gateway.services.webhooks import WebhookService

    return WebhookService(
        store,
        check_webhook_settings(settings),
        settings.webhooks,
        allow_private=settings.upstream.allow_private_links,
    )


async def _team_id(store: Store, name: str) -> str:
    team = await store.team_by_name(name)
    if team is None:
        raise NotFound(f"no team named {name!r}")
    return team.id


async def _add(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    types = [t.strip() for t in args.event_types.split(",") if t.strip()]
    endpoint, secret = await _service(settings, store).create(
        await _team_id(store, args.team), name=args.name, url=args.url, event_types=types
    )
    print(
        f"created webhook endpoint {endpoint.id} for team {args.team} ({endpoint.url});"
        " its signing secret is shown once, store it now",
        file=sys.stderr,
    )
    print(secret)
    return 0


async def _list(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    team_id = await _team_id(store, args.team) if args.team else None
    teams = {t.id: t.name for t in await store.list_teams()}
    print("id\tteam\tname\turl\tstatus\tfailures\tevent_types\tsecret")
    after = None
    while True:
        page, more = await store.list_endpoints(team_id, after=after, limit=100)
        for e in page:
            print(
                f"{e.id}\t{teams.get(e.team_id, e.team_id)}\t{e.name}\t{e.url}\t{e.status}"
                f"\t{e.consecutive_failures}\t{','.join(e.event_types)}\t{e.secret_hint}"
            )
        if not more or not page:
            return 0
        after = page[-1].id


async def _set_status(
    args: argparse.Namespace, settings: Settings, store: Store, status: str
) -> int:
    endpoint = await _service(settings, store).update(args.endpoint_id, None, status=status)
    print(f"{status} webhook endpoint {endpoint.id}")
    return 0


async def _disable(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    return await _set_status(args, settings, store, "disabled")


async def _enable(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    return await _set_status(args, settings, store, "enabled")


async def _remove(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    await _service(settings, store).delete(args.endpoint_id, None)
    print(f"removed webhook endpoint {args.endpoint_id}")
    return 0


async def _rotate(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    endpoint, secret = await _service(settings, store).rotate_secret(
        args.endpoint_id, None, keep_old=args.keep_old
    )
    kept = " (the old one still signs for 24 h)" if args.keep_old else ""
    print(f"new signing secret for {endpoint.id}{kept}; shown once", file=sys.stderr)
    print(secret)
    return 0


async def _deliveries(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from gateway.web.webhooks import render_delivery

    found = await _service(settings, store).deliveries(args.endpoint_id)
    if args.json:
        data = [render_delivery(d, attempts) for d, attempts in found]
        print(json.dumps({"object": "list", "data": data}, indent=2))
        return 0
    print("id\tevent\ttype\tvideo\tstatus\tattempts\tlast\tcreated")
    for d, _ in found:
        last = d.last_status_code if d.last_status_code is not None else (d.last_error or "-")
        created = datetime.fromtimestamp(d.created_at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(
            f"{d.id}\t{d.event_id}\t{d.event_type}\t{d.video_id}\t{d.status}\t{d.attempts}"
            f"\t{last}\t{created}"
        )
    return 0


async def _resend(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    delivery = await _service(settings, store).resend(args.endpoint_id, args.delivery_id)
    print(f"queued delivery {delivery.id} again (event {delivery.event_id})")
    return 0


def _new_key(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.services.webhook_secrets import SecretBox

    print(SecretBox.new_key())
    return 0


async def _reseal(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    count = await _service(settings, store).reseal_all()
    print(f"re-encrypted the secrets of {count} webhook endpoints with the first key")
    return 0
