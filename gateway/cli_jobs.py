"""The ``gateway jobs`` commands: settle a video whose submit outcome is unknown.

``gateway jobs unknown`` lists them; ``gateway jobs resolve VIDEO_ID --charge|--refund|
--upstream-id ID --reason TEXT`` opens the
store directly (no running server needed) and does what ``POST /admin/jobs/{id}/resolve`` does;
the ledger rows name the actor (``--actor``, default ``cli:$USER``) and the reason.
"""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from gateway.cli_money import Action, Runner
from gateway.services.outcomes import OutcomeService
from gateway.settings import Settings
from gateway.store.base import Store


def register(sub: Any, run: Runner) -> None:
    jobs = sub.add_parser("jobs", help="settle videos whose outcome is unknown").add_subparsers(
        dest="action", required=True
    )
    jobs.add_parser(
        "unknown", help="list videos whose submit outcome is unknown (oldest first)"
    ).set_defaults(handler=run(_unknown))
    resolve = jobs.add_parser(
        "resolve", help="charge or refund a submit_unknown video, or attach its upstream id"
    )
    resolve.add_argument("video_id")
    decision = resolve.add_mutually_exclusive_group(required=True)
    decision.add_argument("--charge", action="store_true", help="the upstream had the job")
    decision.add_argument("--refund", action="store_true", help="the upstream never had it")
    decision.add_argument(
        "--upstream-id", help="the upstream's job id (from the logs): poll it and settle normally"
    )
    resolve.add_argument("--reason", required=True, help="why (kept in the ledger)")
    resolve.add_argument("--actor", help="who decides (default: cli:$USER)")
    resolve.set_defaults(handler=run(_resolve))


async def _resolve(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    decision: Any = "charge" if args.charge else "refund" if args.refund else None
    job = await OutcomeService(store).resolve(
        args.video_id,
        decision=decision,
        actor=args.actor or f"cli:{_user()}",
        reason=args.reason,
        upstream_id=args.upstream_id,
    )
    print(
        json.dumps(
            {
                "id": job.id,
                "status": job.status,
                "money_state": job.money_state,
                "charged_micros": job.charged_micros or 0,
                "upstream_id": job.upstream_id,
            }
        )
    )
    return 0


async def _unknown(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    print("id\tteam\tcreated_at\treserved_micros\tmessage")
    for job in await store.unknown_outcomes(1000):
        reserved = job.cost_micros - job.settled_micros  # a chain's finished segments are charged
        print(f"{job.id}\t{job.team_id}\t{job.created_at}\t{reserved}\t{job.error_message}")
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


__all__ = ["Action", "register"]
