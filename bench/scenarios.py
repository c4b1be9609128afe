"""The scenarios: for each, what the direct, nginx and gateway targets are sent (a wrk job plus
a one-off probe request that checks the target answers 2xx before load is put on it).

A target that cannot be measured (nginx not installed, a gateway feature missing, a job that
could not be made) is an ``Unavailable`` with the reason, reported as "n/a (reason)".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.servers import ServerProcess
from bench.workload import SANDBOX_KEY, create_body
from bench.wrk import WrkJob

TARGETS: tuple[str, ...] = ("direct", "nginx", "gateway")
CACHE_HIT_PROMPT = "bench cache-hit: a paper boat drifting down a rainy street, cinematic, 35mm"
CONTENT_BYTES = 1024 * 1024
DOWNLOAD_BYTES = 200 * 1024 * 1024
POLL_BYTES = 64 * 1024
# Videos of jobs made by the write scenarios: the gateway's runner copies every one into its
# storage, so keep them small (tens of thousands of jobs per run).
WRITE_VIDEO_BYTES = 4 * 1024
CONTENTION_KEYS = 50
# Videos of the baseline's creates: the issue's "create with the runner's work for 1 MiB
# videos included".
BASELINE_CREATE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Unavailable:
    """Why a target, job or key could not be had."""

    reason: str


@dataclass(frozen=True)
class Probe:
    """One request sent before the load, exactly as wrk would send it."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


@dataclass(frozen=True)
class TargetPlan:
    """How to load one target, and which processes to account CPU to."""

    wrk: WrkJob
    probe: Probe
    front: ServerProcess
    upstream: ServerProcess | None


PlanMaker = Callable[[str, ServerProcess, ServerProcess | None, str], TargetPlan | Unavailable]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    note: str
    plans: dict[str, TargetPlan | Unavailable]


@dataclass
class Deployment:
    """The running servers; nginx or the gateway may be missing."""

    sandbox: ServerProcess
    nginx: ServerProcess | Unavailable
    gateway: ServerProcess | Unavailable


@dataclass
class Fixtures:
    """Keys and finished jobs the scenarios use, per side (gateway ids vs sandbox ids)."""

    workdir: Path
    gateway_key: str | Unavailable
    gateway_keys_file: Path | Unavailable
    gateway_jobs: dict[str, str | Unavailable] = field(default_factory=dict)
    sandbox_jobs: dict[str, str | Unavailable] = field(default_factory=dict)

    def sandbox_keys_file(self) -> Path:
        """As many keys as the gateway side uses, so the Lua work per request is equal."""
        path = self.workdir / "sandbox-keys.txt"
        if not path.exists():
            path.write_text("".join(f"{SANDBOX_KEY}-{i}\n" for i in range(CONTENTION_KEYS)))
        return path


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _create_probe(url: str, key: str, prompt: str) -> Probe:
    headers = {**_auth(key), "Content-Type": "application/json"}
    return Probe("POST", url, headers, orjson.dumps(create_body(prompt)))


class ScenarioBuilder:
    """Turns a deployment and its fixtures into the five scenarios."""

    def __init__(self, deployment: Deployment, fixtures: Fixtures) -> None:
        self.deployment = deployment
        self.fixtures = fixtures

    def reads(self) -> list[Scenario]:
        """Scenarios over the fixture jobs. Run them before the writes: a million creates make
        the sandbox forget its oldest jobs (``max_jobs``), fixtures included."""
        return [self.poll(), self.content()]

    def baseline(self) -> list[Scenario]:
        """Against the fast upstream: the scenarios whose ratios the baseline checks judge."""
        return [
            dataclasses.replace(s, name=f"baseline_{s.name}", title=f"{s.title} (fast upstream)")
            for s in (self.poll(), self.content(), self.create())
        ]

    def writes(self) -> list[Scenario]:
        return [self.create(), self.cache_hit(), self.contention()]

    # -- per side: where requests go and with which credentials ------------------------------

    def _side(self, target: str) -> tuple[ServerProcess, ServerProcess | None] | Unavailable:
        """The front process for ``target`` and the upstream behind it (if any)."""
        d = self.deployment
        if target == "direct":
            return d.sandbox, None
        front = d.nginx if target == "nginx" else d.gateway
        if isinstance(front, Unavailable):
            return front
        return front, d.sandbox

    def _key(self, target: str) -> str | Unavailable:
        return self.fixtures.gateway_key if target == "gateway" else SANDBOX_KEY

    def _job(self, target: str, role: str) -> str | Unavailable:
        jobs = self.fixtures.gateway_jobs if target == "gateway" else self.fixtures.sandbox_jobs
        return jobs.get(role, Unavailable(f"no {role} job"))

    def _plans(self, make: PlanMaker) -> dict[str, TargetPlan | Unavailable]:
        plans: dict[str, TargetPlan | Unavailable] = {}
        for target in TARGETS:
            side, key = self._side(target), self._key(target)
            if isinstance(side, Unavailable):
                plans[target] = side
            elif isinstance(key, Unavailable):
                plans[target] = key
            else:
                plans[target] = make(target, side[0], side[1], key)
        return plans

    # -- the scenarios -----------------------------------------------------------------------

    def _get_plans(
        self, role: str, suffix: str, record: bool
    ) -> dict[str, TargetPlan | Unavailable]:
        def make(
            target: str, front: ServerProcess, upstream: ServerProcess | None, key: str
        ) -> TargetPlan | Unavailable:
            job = self._job(target, role)
            if isinstance(job, Unavailable):
                return job
            url = f"{front.url}/v1/videos/{job}{suffix}"
            env = {"BENCH_KEY": key, "BENCH_RECORD_STATUS": "1" if record else "0"}
            return TargetPlan(
                WrkJob(url, "get.lua", env), Probe("GET", url, _auth(key)), front, upstream
            )

        return self._plans(make)

    def poll(self) -> Scenario:
        return Scenario(
            "poll",
            "status poll of a finished job",
            "GET /v1/videos/{id}; the sandbox and nginx answer for the upstream id",
            self._get_plans("poll", "", record=True),
        )

    def content(self) -> Scenario:
        return Scenario(
            "content",
            "content download, 1 MiB",
            "GET /v1/videos/{id}/content of a finished 1 MiB video (gateway streams from upstream)",
            self._get_plans("content", "/content", record=False),
        )

    def _create_plans(self, mode: str, many_keys: bool) -> dict[str, TargetPlan | Unavailable]:
        def make(
            target: str, front: ServerProcess, upstream: ServerProcess | None, key: str
        ) -> TargetPlan | Unavailable:
            url = f"{front.url}/v1/videos"
            env = {"BENCH_KEY": key, "BENCH_PROMPT": mode}
            if many_keys:
                keys_file: Path | Unavailable = (
                    self.fixtures.gateway_keys_file
                    if target == "gateway"
                    else self.fixtures.sandbox_keys_file()
                )
                if isinstance(keys_file, Unavailable):
                    return keys_file
                env["BENCH_KEYS_FILE"] = str(keys_file)
                key = keys_file.read_text().split()[0]
            prompt = CACHE_HIT_PROMPT if mode == "fixed" else f"bench probe {target} {mode}"
            probe = _create_probe(url, key, prompt)
            return TargetPlan(WrkJob(url, "create.lua", env), probe, front, upstream)

        return self._plans(make)

    def create(self) -> Scenario:
        return Scenario(
            "create",
            "create, unique prompts",
            "POST /v1/videos JSON, a new seeded prompt per request",
            self._create_plans("unique", many_keys=False),
        )

    def cache_hit(self) -> Scenario:
        return Scenario(
            "cache_hit",
            "create, identical seeded body",
            "the same seeded create every time: a cache could answer it "
            "(upstream creates per request 1.00 means nothing was deduped)",
            self._create_plans("fixed", many_keys=False),
        )

    def contention(self) -> Scenario:
        return Scenario(
            "contention",
            f"create over {CONTENTION_KEYS} keys of one team",
            "unique creates, the Lua script rotates the Authorization key per request "
            "(budget contention once budgets exist)",
            self._create_plans("unique", many_keys=True),
        )
