"""The ``gateway`` command: serve, sandbox, migrate, check-config, teams, keys, (from
``gateway.cli_money``) budgets, usage and audit, and (from ``gateway.cli_webhooks``) webhooks.

Flags fill the same ``Settings`` the config file and environment do. Commands that manage
teams, keys and budgets talk to the database directly, so they work without a running server.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from gateway import cli_jobs, cli_limits, cli_money, cli_webhooks
from gateway.cli_output import print_json, print_table, utc_time
from gateway.domain.teams import TEAM_NAME_RULE
from gateway.errors import GatewayError
from gateway.settings import Settings, SettingsError, describe, load_settings
from gateway.store.base import Store

DEMO_TEAM = "demo"
STARTUP_FAILURE = 3  # uvicorn's exit code when the app fails to start (e.g. its lifespan)


async def open_configured_store(settings: Settings) -> Store:
    from gateway.app import open_configured_store as open_from_settings

    return await open_from_settings(settings)


DESCRIPTION = (
    "The Seedance video gateway: serve it, run its job runner or sandbox, and manage teams,"
    " keys, budgets and limits straight on its database (no running server needed)."
)
CONFIG_HELP = "TOML settings file (default ./config.toml); accepted before or after the command"


def main(argv: Sequence[str] | None = None, *, clock: Callable[[], float] = time.time) -> int:
    """Run one command; ``clock`` is the time budget periods are computed at (tests fix it)."""
    args = _parser().parse_args(argv)
    args.clock = clock
    try:
        settings = load_settings(args.config, overrides=_overrides(args))
        result: int = args.handler(args, settings)
        return result
    except (SettingsError, GatewayError, ValueError) as exc:
        message = exc.message if isinstance(exc, GatewayError) else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=DESCRIPTION)
    parser.add_argument("--config", type=Path, default=None, metavar="FILE", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_process_commands(sub)
    _add_team_commands(sub)
    _add_key_commands(sub)
    cli_money.register(sub, _run)
    cli_jobs.register(sub, _run)
    cli_limits.register(sub, _run)
    cli_webhooks.register(sub, _run)
    _accept_config_anywhere(parser)
    return parser


def _add_process_commands(sub: Any) -> None:
    """``serve``, ``sandbox``, ``worker``, ``migrate`` and ``check-config``."""
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    serve.add_argument(
        "--port",
        type=port_number,
        metavar="N",
        help="port to listen on (default: server.port, 8080)",
    )
    serve.add_argument(
        "--sandbox",
        action="store_true",
        help="use the built-in fake upstream (no AIHUBMIX_API_KEY needed; nothing billed)",
    )
    serve.set_defaults(handler=_serve)

    sandbox = sub.add_parser("sandbox", help="run the fake AIHubMix upstream on its own")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=port_number, default=8090, metavar="N")
    sandbox.set_defaults(handler=_sandbox)

    worker = sub.add_parser(
        "worker", help="run only the background job runner (poll, persist, settle)"
    )
    worker.add_argument(
        "--sandbox", action="store_true", help="poll the sandbox at upstream.base_url"
    )
    worker.set_defaults(handler=_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(handler=_migrate)
    sub.add_parser("check-config", help="validate and print the settings").set_defaults(
        handler=_check_config
    )


def _add_team_commands(sub: Any) -> None:
    """``teams create`` and ``teams list``."""
    teams = sub.add_parser("teams", help="manage teams").add_subparsers(
        dest="action", required=True
    )
    create_team = teams.add_parser("create", help="create a team")
    create_team.add_argument("name", help=f"the team's name; {TEAM_NAME_RULE.lower()}")
    create_team.set_defaults(handler=_run(_teams_create))
    list_teams = teams.add_parser("list", help="list teams")
    list_teams.add_argument("--json", action="store_true", help="print the API's JSON instead")
    list_teams.set_defaults(handler=_run(_teams_list))


def _add_key_commands(sub: Any) -> None:
    """``keys create``, ``keys list`` and ``keys revoke``."""
    keys = sub.add_parser("keys", help="manage gateway keys").add_subparsers(
        dest="action", required=True
    )
    create_key = keys.add_parser("create", help="create a key; prints the plaintext key once")
    create_key.add_argument("--team", required=True)
    create_key.add_argument("--name", default="")
    create_key.set_defaults(handler=_run(_keys_create))
    list_keys = keys.add_parser("list", help="list keys (never the plaintext)")
    list_keys.add_argument("--team", metavar="NAME", help="only this team's keys")
    list_keys.add_argument("--json", action="store_true", help="print the API's JSON instead")
    list_keys.set_defaults(handler=_run(_keys_list))
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=_run(_keys_revoke))


def _accept_config_anywhere(parser: argparse.ArgumentParser) -> None:
    """Let ``--config FILE`` follow the command too (``gateway serve --config FILE``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if not any("--config" in a.option_strings for a in child._actions):
                    child.add_argument(
                        "--config",
                        type=Path,
                        default=argparse.SUPPRESS,
                        metavar="FILE",
                        help=CONFIG_HELP,
                    )
                _accept_config_anywhere(child)


def port_number(text: str) -> int:
    """An argparse type: a TCP port from 1 to 65535 (``--port 99999`` must not wrap around)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 1-65535")
    return port


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind the server's socket now, before any banner, so a busy port is reported plainly
    (uvicorn then serves on this very socket: no gap for another process to take it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SettingsError(
                f"port {port} is in use; set GATEWAY_SERVER__PORT or pass `gateway serve --port N`"
            ) from exc
        raise SettingsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    server: dict[str, Any] = {}
    if args.command == "serve":
        if args.host:
            server["host"] = args.host
        if args.port is not None:
            server["port"] = args.port
    overrides: dict[str, dict[str, Any]] = {"server": server} if server else {}
    if getattr(args, "sandbox", False) and args.command in ("serve", "worker"):
        overrides["upstream"] = {"sandbox": True}
    return overrides


def _run(
    action: Callable[[argparse.Namespace, Settings, Store], Awaitable[int]],
) -> Callable[[argparse.Namespace, Settings], int]:
    """Wrap an async command that needs a migrated store."""

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        async def go() -> int:
            store = await open_configured_store(settings)
            try:
                await store.migrate()
                return await action(args, settings, store)
            finally:
                await store.close()

        return asyncio.run(go())

    return handler


def _key_service(store: Store) -> Any:
    from gateway.services.keys import KeyService

    return KeyService(store, cache_seconds=0)


async def _teams_create(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    team = await _key_service(store).create_team(args.name, actor="cli")
    print(f"created team {team.name} ({team.id})")
    return 0


async def _teams_list(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from gateway.web.admin import render_team

    teams = await store.list_teams()
    if args.json:
        print_json({"object": "list", "data": [render_team(team) for team in teams]})
        return 0
    rows = [(team.name, team.id, utc_time(team.created_at)) for team in teams]
    print_table(("name", "id", "created"), rows)
    return 0


async def _keys_create(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    key, plaintext = await _key_service(store).create_key(args.team, args.name, actor="cli")
    print(f"created key {key.id} for team {args.team}; shown once, store it now", file=sys.stderr)
    print(plaintext)
    return 0


async def _keys_list(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    team_id = None
    if args.team:
        team = await store.team_by_name(args.team)
        if team is None:
            print(f"error: no team named {args.team!r}", file=sys.stderr)
            return 2
        team_id = team.id
    from gateway.web.admin import render_key

    keys = await store.list_keys(team_id)
    if args.json:
        print_json({"object": "list", "data": [render_key(key) for key in keys]})
        return 0
    teams = {t.id: t.name for t in await store.list_teams()}
    rows = [
        (
            key.id,
            teams.get(key.team_id, key.team_id),
            key.name,
            f"{key.prefix}...",
            "active" if key.active else "revoked",
            utc_time(key.created_at),
        )
        for key in keys
    ]
    print_table(("id", "team", "name", "prefix", "status", "created"), rows)
    return 0


async def _keys_revoke(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    await _key_service(store).revoke_key(args.key_id, actor="cli")
    print(f"revoked key {args.key_id}")
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        store = await open_configured_store(settings)
        try:
            version = await store.migrate()
        finally:
            await store.close()
        print(f"database schema at version {version}")
        return 0

    return asyncio.run(go())


def lower_priority(increment: int) -> None:
    """Background work yields the CPU to the API: raise this process's nice value (a no-op
    where there is none; never an error: a bounded share is a preference, not a requirement)."""
    if increment > 0 and hasattr(os, "nice"):
        try:
            os.nice(min(increment, 19))
        except OSError as exc:
            logging.getLogger("gateway").warning("could not lower the worker's priority: %s", exc)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    import uvloop

    from gateway.app import check_settings, run_worker
    from gateway.gc_tuning import settle_heap
    from gateway.logs import configure_logging

    check_settings(settings)
    configure_logging(settings.log.level, settings.log.format)
    lower_priority(settings.jobs.worker_nice)
    settle_heap()  # see gateway/gc_tuning.py

    async def go() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_worker(settings, stop)
        return 0

    return uvloop.run(go())


def _check_config(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.app import check_settings, effective_upstream

    check_settings(settings)
    described: dict[str, Any] = describe(settings)
    kind, url = effective_upstream(settings)
    described["effective"] = {"upstream": kind, "upstream_url": url}
    print(json.dumps(described, indent=2))
    print(f"upstream: {kind} ({url})", file=sys.stderr)
    return 0


def _sandbox(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from gateway.sandbox.app import create_sandbox_app
    from gateway.sandbox.config import SandboxConfig

    config = SandboxConfig(
        queue_seconds=settings.sandbox.queue_seconds,
        run_seconds=settings.sandbox.run_seconds,
        video_bytes=settings.sandbox.video_bytes,
        link_ttl_seconds=settings.sandbox.link_ttl_seconds,
        frame_short_side=settings.sandbox.frame_short_side,
        frame_rate=settings.sandbox.frame_rate,
    )
    print(f"sandbox upstream (fake AIHubMix) on http://{args.host}:{args.port}", file=sys.stderr)
    uvicorn.run(create_sandbox_app(config), host=args.host, port=args.port, log_level="warning")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from gateway.app import check_settings, create_app
    from gateway.gc_tuning import settle_heap
    from gateway.logs import configure_logging

    check_settings(settings)  # before anything is written: no key and no --sandbox stops here
    sock = listening_socket(settings.server.host, settings.server.port)  # a busy port, too
    configure_logging(settings.log.level, settings.log.format)
    if settings.use_sandbox:
        key = asyncio.run(_demo_key(settings))
        _print_banner(settings, key)
    app = create_app(settings)
    settle_heap()  # after the imports and the app: see gateway/gc_tuning.py
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        access_log=False,
        http="httptools",
        loop="uvloop",
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE


def demo_key_path(settings: Settings) -> Path:
    """Where the sandbox demo key is kept: beside the SQLite file, or in ./data."""
    url = settings.database.url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite:///")).parent / "demo-key"
    return Path("data") / "demo-key"


async def _demo_key(settings: Settings) -> str:
    """The demo key for sandbox mode: made once, then reused while it stays valid."""
    from gateway.domain.api_keys import hash_key

    path = demo_key_path(settings)
    store = await open_configured_store(settings)
    try:
        await store.migrate()
        if path.exists():
            existing = path.read_text().strip()
            found = await store.key_by_hash(hash_key(existing))
            if found is not None and found.active:
                return existing
        service = _key_service(store)
        if await store.team_by_name(DEMO_TEAM) is None:
            await service.create_team(DEMO_TEAM, actor="sandbox")
        _, plaintext = await service.create_key(DEMO_TEAM, "demo (sandbox)", actor="sandbox")
    finally:
        await store.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(plaintext + "\n")
    result: str = plaintext
    return result


def _print_banner(settings: Settings, key: str) -> None:
    base = f"http://{settings.server.host}:{settings.server.port}"
    bar = "=" * 78
    print(
        f"""{bar}
 SANDBOX MODE (--sandbox / upstream.sandbox). Videos come from the built-in fake
 upstream; nothing is sent to AIHubMix and nothing is billed.
{bar}
 Gateway:   {base}/v1
 Demo key:  {key}   (team "{DEMO_TEAM}", kept in {demo_key_path(settings)})

 curl:
   curl -s {base}/v1/videos -H "Authorization: Bearer {key}" \\
     -H "Content-Type: application/json" \\
     -d '{{"model": "doubao-seedance-2-0-fast-260128", "prompt": "A paper boat on a rainy street", "duration": 5, "seed": 42}}'

 Python (openai SDK):
   from openai import OpenAI
   client = OpenAI(base_url="{base}/v1", api_key="{key}")
   video = client.videos.create_and_poll(model="doubao-seedance-2-0-fast-260128",
                                         prompt="A paper boat on a rainy street", seconds="5")
   client.videos.download_content(video.id).write_to_file("boat.mp4")
{bar}""",
        flush=True,
    )
