"""One frozen ``Settings``: built-in defaults, then a TOML file, then ``GATEWAY_<SECTION>__<KEY>``.

Secrets (``AIHUBMIX_API_KEY``, ``GATEWAY_ADMIN_TOKEN``, ``GATEWAY_WEBHOOK_SECRET_KEY``) come only from the environment and are
never printed (their ``repr`` is masked). This is the only module that reads the environment;
everything else receives a ``Settings``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.domain.pricing import DEFAULT_PRICES_USD

ENV_PREFIX = "GATEWAY_"
DEFAULT_CONFIG_FILE = Path("config.toml")


class SettingsError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


class Secret(str):
    """A string whose ``repr`` never shows the value (safe in logs and tracebacks)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('****')" if self else "Secret('')"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Largest request body accepted on POST /v1/videos (bytes); data: URLs make bodies large.
    max_body_bytes: int = 32 * 1024 * 1024
    # Public base URL used in links the gateway hands out (empty = derived from the request).
    public_url: str = ""


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///./data/gateway.db"
    # PostgreSQL connection pool per process (SQLite ignores these).
    pool_min_size: int = 1
    pool_max_size: int = 10
    # SQLite: how long a write waits for another process holding the database's write lock.
    busy_timeout_seconds: float = 5.0


@dataclass(frozen=True)
class StorageSettings:
    url: str = "file://./data/blobs"
    # Days a finished video is kept; 0 keeps it forever.
    retention_days: int = 0
    # For s3://bucket/prefix: the S3-compatible endpoint ("" = AWS), region and addressing.
    # Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or roles.
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_path_style: bool = False
    # Largest video stored from the upstream (bytes). A 15 s 1080p Seedance video is about
    # 10-20 MB; 256 MiB leaves a wide margin yet stops an endless or hostile stream.
    max_video_bytes: int = 256 * 1024 * 1024
    # Largest last frame stored (a 1080p PNG is a few MB).
    max_image_bytes: int = 32 * 1024 * 1024
    # A whole download (video or last frame) must finish within this many seconds.
    download_timeout_seconds: float = 600.0
    # /readyz fails when the blob directory's file system has less free space than this.
    min_free_bytes: int = 512 * 1024 * 1024
    # Rejected and failed videos (rows and their stored request media) are purged this many
    # days after they ended; 0 keeps them forever.
    failed_retention_days: int = 30


@dataclass(frozen=True)
class UpstreamSettings:
    base_url: str = "https://aihubmix.com"
    # Use the built-in sandbox (a fake AIHubMix: no real videos, nothing billed). Never implied:
    # without AIHUBMIX_API_KEY and without this (or `gateway serve --sandbox`), start-up fails.
    sandbox: bool = False
    connect_timeout: float = 5.0
    timeout: float = 30.0
    max_connections: int = 100
    # Attempts for idempotent calls (GET, DELETE); POST is retried only on connect errors.
    retries: int = 3
    backoff_base: float = 0.2
    backoff_max: float = 5.0
    # Let upstream links, redirects and webhook URLs reach loopback/private/link-local addresses
    # (sandbox, tests). Off in production: a hostile link must not reach the internal network.
    allow_private_links: bool = False
    # Largest submit or poll answer read from the upstream (bytes).
    max_answer_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class RequestSettings:
    # Reject fields the gateway does not know (a misspelt "resoluton" must not cost money).
    reject_unknown_fields: bool = True
    # Extra model names: alias -> model id, e.g. {"seedance-fast" = "doubao-seedance-2-0-fast-260128"}.
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    # How long an Idempotency-Key stays bound to the video it created (at least 24 hours).
    idempotency_hours: float = 24.0
    # Longest video (seconds) made by chaining segments through last frames (0: no chaining).
    max_chained_seconds: int = 60


@dataclass(frozen=True)
class JobSettings:
    # GET /v1/videos/{id} refreshes an unfinished job from upstream when older than this.
    refresh_after_seconds: float = 3.0
    # Value of the openai-poll-after-ms header sent while a job runs.
    poll_after_ms: int = 5000
    # Run the background job runner inside `gateway serve` (false when `gateway worker` runs it).
    runner: bool = True
    # `gateway worker` lowers its own CPU priority by this much (Unix nice, 0..19) at start, so
    # on a core it shares with `gateway serve` the API is served first and persistence takes
    # what is left (it falls behind under a saturating API load and catches up after).
    worker_nice: int = 10
    # How long a runner owns a claimed job before another runner may take it over.
    lease_seconds: float = 60.0
    # How long an idle runner waits before looking for due jobs again.
    idle_seconds: float = 0.5
    # Upstream polls and downloads in flight at once, per runner. The poll limit sizes itself:
    # it starts at poll_concurrency and doubles (up to poll_concurrency_max) while due jobs
    # wait more than 0.5 s for a slot, and halves when the upstream answers 429. Set both
    # equal to pin it (docs/operations.md, "Sizing the runner").
    poll_concurrency: int = 16
    poll_concurrency_max: int = 256
    download_concurrency: int = 4
    # Poll back-off: first delay, growing 2.5x per poll, capped at the maximum.
    poll_min_seconds: float = 2.0
    poll_max_seconds: float = 30.0
    # A job unfinished this long after submission is failed with error.code "timeout"; a job
    # whose submit outcome is still unknown then is charged.
    deadline_seconds: float = 7200.0
    # How long upstream download links stay valid after the job finishes (AIHubMix: 24 h).
    link_ttl_seconds: float = 86400.0
    # A job still "submitting" this long (the gateway died mid-submit) becomes "submit_unknown":
    # the upstream may have it, so its reservation stays until evidence, an operator or the
    # deadline (which charges it) settles it.
    submit_grace_seconds: float = 120.0
    # On shutdown, how long in-flight polls and downloads may finish before they are abandoned.
    drain_seconds: float = 20.0
    # How often the runner sweeps crash leftovers, orphaned blobs and expired videos.
    sweep_interval_seconds: float = 300.0
    # Partial uploads older than this are crash leftovers and are removed by the sweep.
    temp_max_age_seconds: float = 3600.0


@dataclass(frozen=True)
class CacheSettings:
    # Serve identical seeded requests from finished videos and join identical running ones.
    enabled: bool = True
    # Who shares cached videos: "team" (default), "key" or "org" (everyone).
    scope: str = "team"
    # Also dedupe requests without a seed (their output is not reproducible upstream).
    include_unseeded: bool = False
    # Charge a cache hit its full price (default: hits are free and need no budget).
    charge_hits: bool = False
    # Days a finished video stays servable as a hit; 0 = as long as it is stored.
    ttl_days: int = 0


@dataclass(frozen=True)
class LimitSettings:
    # Defaults for every team and every key; 0 = no limit. `gateway limits set` overrides them
    # per team or key. In flight = gone upstream and not finished (cache hits and joins never count).
    team_max_in_flight_jobs: int = 0
    team_requests_per_minute: int = 0
    key_max_in_flight_jobs: int = 0
    key_requests_per_minute: int = 0


@dataclass(frozen=True)
class WebhookSettings:
    # Deliver queued webhook events from this process (wherever the job runner runs).
    deliver: bool = True
    # Events not delivered this long after they were queued are given up (OpenAI: 72 h).
    max_age_hours: float = 72.0
    # Consecutive failed attempts (any event) after which an endpoint is disabled.
    disable_after_failures: int = 100
    # Retry back-off: first delay, doubling per attempt, capped; each delay jittered in its upper half.
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    # One delivery request: connect + send + answer, in seconds (redirects are never followed).
    timeout_seconds: float = 10.0
    # Deliveries in flight at once: per endpoint across every replica, and per process.
    concurrency_per_endpoint: int = 4
    concurrency: int = 32
    # How long a process owns a claimed delivery (must exceed timeout_seconds).
    lease_seconds: float = 60.0
    # How long an idle deliverer waits before looking for due deliveries again.
    idle_seconds: float = 1.0
    # Endpoints a team may register.
    max_endpoints_per_team: int = 10


@dataclass(frozen=True)
class SandboxSettings:
    # Port of the in-process sandbox when it starts with `gateway serve` (0 = any free port).
    port: int = 0
    queue_seconds: float = 1.0
    run_seconds: float = 4.0
    video_bytes: int = 256 * 1024
    link_ttl_seconds: float = 86400.0
    # Rendered videos: the shorter side in pixels and the frame rate (small keeps renders fast).
    frame_short_side: int = 90
    frame_rate: int = 24


@dataclass(frozen=True)
class MetricsSettings:
    # Label spend and budget metrics with team names (bounded by the teams you create).
    team_labels: bool = False


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"
    format: str = "json"


@dataclass(frozen=True)
class DashboardSettings:
    # Serve the operator's dashboard at /dashboard (it is off anyway without an admin token).
    enabled: bool = True
    # How long a dashboard sign-in lasts before the session cookie expires.
    session_hours: float = 12.0
    # Let a team key sign in as that team's read-only lead (sees only its own team).
    team_leads: bool = True
    # "Near their deadline": unfinished jobs this close to jobs.deadline_seconds are listed.
    near_deadline_seconds: float = 1800.0


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    requests: RequestSettings = field(default_factory=RequestSettings)
    jobs: JobSettings = field(default_factory=JobSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    log: LogSettings = field(default_factory=LogSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    # USD per second by model and resolution ("720p", "720p_with_video"): [prices] in TOML.
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: DEFAULT_PRICES_USD)
    aihubmix_api_key: Secret = Secret("")  # noqa: RUF009 (immutable)
    admin_token: Secret = Secret("")  # noqa: RUF009 (immutable)
    # Fernet keys (comma separated, newest first) that encrypt webhook signing secrets at rest.
    webhook_secret_key: Secret = Secret("")  # noqa: RUF009 (immutable)

    @property
    def use_sandbox(self) -> bool:
        """True when requests go to the sandbox instead of AIHubMix: only when asked for
        (``upstream.sandbox``); a missing key is an error, never a silent sandbox."""
        return self.upstream.sandbox

    @property
    def upstream_name(self) -> str:
        """Which upstream is in use, for /readyz, check-config and the start-up log."""
        return "sandbox" if self.use_sandbox else "aihubmix"


SECTIONS: tuple[str, ...] = tuple(
    f.name
    for f in dataclasses.fields(Settings)
    if isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory)
)


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Defaults <- TOML file <- environment <- ``overrides`` (CLI flags), validated and frozen.

    Without ``config_file``, ``./config.toml`` is read when it exists.
    """
    env = os.environ if environ is None else environ
    data: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    prices = {model: dict(entries) for model, entries in DEFAULT_PRICES_USD.items()}
    path = config_file if config_file is not None else DEFAULT_CONFIG_FILE
    if config_file is not None or path.exists():
        document = _read_toml(path)
        _merge_prices(prices, document.pop("prices", {}), source=str(path))
        _merge(data, document, source=str(path))
    if "GATEWAY_PRICES" in env:
        _merge_prices(
            prices, _json_object(env["GATEWAY_PRICES"], "GATEWAY_PRICES"), source="environment"
        )
    _merge(data, _from_environment(env), source="environment")
    if overrides:
        _merge(data, {k: dict(v) for k, v in overrides.items()}, source="command line")
    sections = {name: _build_section(name, values) for name, values in data.items()}
    return Settings(
        **sections,
        prices=types.MappingProxyType(
            {model: types.MappingProxyType(entries) for model, entries in prices.items()}
        ),
        aihubmix_api_key=Secret(env.get("AIHUBMIX_API_KEY", "")),
        admin_token=Secret(env.get("GATEWAY_ADMIN_TOKEN", "")),
        webhook_secret_key=Secret(env.get("GATEWAY_WEBHOOK_SECRET_KEY", "")),
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise SettingsError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SettingsError(f"{where} must be a JSON object")
    return value


def _merge_prices(prices: dict[str, dict[str, float]], new: Any, *, source: str) -> None:
    """Merge ``{model: {"720p": 0.154, ...}}`` price by price over the defaults."""
    if not isinstance(new, Mapping):
        raise SettingsError(f"[prices] in {source} must be a table of models")
    for model, entries in new.items():
        if not isinstance(entries, Mapping):
            raise SettingsError(f"[prices] {model!r} in {source} must be a table of prices")
        for key, value in entries.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SettingsError(f"price {model}.{key} in {source} must be a number")
            prices.setdefault(model, {})[key] = float(value)


def _from_environment(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        out.setdefault(section.lower(), {})[key.lower()] = value
    return out


def _merge(data: dict[str, dict[str, Any]], new: Mapping[str, Any], *, source: str) -> None:
    for section, values in new.items():
        if section not in data:
            raise SettingsError(f"unknown settings section [{section}] in {source}")
        if not isinstance(values, Mapping):
            raise SettingsError(f"[{section}] in {source} must be a table")
        data[section].update(values)


def _section_class(name: str) -> type[Any]:
    hints = typing.get_type_hints(Settings)
    cls = hints[name]
    assert isinstance(cls, type)
    return cls


def _build_section(name: str, values: Mapping[str, Any]) -> Any:
    cls = _section_class(name)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in known:
            raise SettingsError(f"unknown setting {name}.{key}; known: {', '.join(sorted(known))}")
        kwargs[key] = _coerce(f"{name}.{key}", hints[key], raw)
    return cls(**kwargs)


def _coerce(where: str, hint: Any, raw: Any) -> Any:
    """Turn a TOML value or an environment string into the declared type, or explain why not."""
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in {"true", "1", "yes", "on"}:
                return True
            if isinstance(raw, str) and raw.lower() in {"false", "0", "no", "off"}:
                return False
            raise ValueError
        if hint is int:
            if isinstance(raw, bool):
                raise ValueError
            return int(raw)
        if hint is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if hint is str:
            if not isinstance(raw, str):
                raise ValueError
            return raw
        if origin in (Mapping, dict) or (isinstance(origin, type) and issubclass(origin, Mapping)):
            value = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ValueError
            return types.MappingProxyType(dict(value))
    except ValueError as exc:
        raise SettingsError(f"setting {where} has an invalid value {raw!r}") from exc
    raise SettingsError(f"setting {where} has an unsupported type")  # pragma: no cover


_USERINFO_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):[^/?#]*@")


def mask_password(value: str) -> str:
    """A URL with its userinfo password replaced by ``****`` (``postgresql://u:****@h/db``)."""
    return _USERINFO_PASSWORD.sub(r"\1:****@", value)


def describe(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every setting and its value, secrets reduced to whether they are set (for check-config)."""
    out: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        section = getattr(settings, name)
        out[name] = {
            f.name: (dict(v) if isinstance(v := getattr(section, f.name), Mapping) else v)
            for f in dataclasses.fields(section)
        }
        out[name] = {k: mask_password(v) if isinstance(v, str) else v for k, v in out[name].items()}
    out["prices"] = {model: dict(entries) for model, entries in settings.prices.items()}
    out["secrets"] = {
        "AIHUBMIX_API_KEY": "set" if settings.aihubmix_api_key else "not set",
        "GATEWAY_ADMIN_TOKEN": "set" if settings.admin_token else "not set",
        "GATEWAY_WEBHOOK_SECRET_KEY": "set" if settings.webhook_secret_key else "not set",
    }
    out["upstream_in_use"] = {"upstream": settings.upstream_name}
    return out
