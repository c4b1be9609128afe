"""A small mutation check for the code that holds money and videos.

Each mutation is a hand-made, plausible bug: one snippet of one file replaced by another. For
each, the working tree is copied to a temporary directory (the working tree itself is never
touched), the snippet is replaced in the copy, and the mutation's focused tests run against the
copy (``PYTHONPATH`` puts the copy's ``gateway`` ahead of the editable install, for the test
process and the gateway processes it starts). A mutation is *killed* when a test fails, *survives*
when they all pass. A snippet that no longer matches exactly once stops the run before any test
starts (exit 2, naming each stale mutation): update the list.

Usage: python scripts/mutate.py [--list] [NAME ...]        (``make mutate`` runs them all)
Results and the survivors' explanations: docs/testing.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPY_IGNORES = shutil.ignore_patterns(
    ".git", ".venv", "data", "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", "helm", "bench",
)  # fmt: skip


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]
    why: str


ADMISSION_TESTS = (
    "tests/store/test_money_contract.py",
    "tests/store/test_store_contract.py",
    "tests/store/test_runner_queries.py",
    "tests/e2e/test_dedupe.py",
)

MUTATIONS: tuple[Mutation, ...] = (
    # -- the five bugs of issue #11 ---------------------------------------------------------
    Mutation(
        "etag-constant",
        "gateway/web/content.py",
        """    etag = f'"{asset.key}"'""",
        """    etag = '"' + "0" * 64 + '"'""",
        ("tests/e2e/test_persistence.py",),
        "every video answers the same ETag: a 304 for a different video",
    ),
    Mutation(
        "if-range-ignored-when-matching",
        "gateway/web/content.py",
        """if if_range in (None, etag) else None""",
        """if if_range is None else None""",
        ("tests/e2e/test_persistence.py",),
        "a matching If-Range sends the whole body instead of the range",
    ),
    Mutation(
        "coalesced-counted-as-hit",
        "gateway/services/events.py",
        """        self.metrics.cache_lookups.labels(outcome).inc()""",
        """        self.metrics.cache_lookups.labels("hit" if outcome == "coalesced" else outcome).inc()""",
        ("tests/e2e/test_observability.py",),
        "gateway_cache_lookups_total counts joins as hits",
    ),
    Mutation(
        "token-tail-in-access-log",
        "gateway/web/middleware.py",
        """    access_log.info("request", extra=extra)""",
        """    extra["auth"] = dict(scope["headers"]).get(b"authorization", b"")[-12:].decode()
    access_log.info("request", extra=extra)""",
        ("tests/e2e/test_observability.py::test_secrets_never_leak",),
        "the access log keeps the last 12 characters of the bearer token",
    ),
    Mutation(
        "expired-leases-never-reclaimed-sqlite",
        "gateway/store/sqlite/leases.py",
        """" AND (locked_until IS NULL OR locked_until < ?)\"""",
        """" AND (locked_until IS NULL OR locked_until < ? - 1000000000)\"""",
        ("tests/e2e/test_processes.py::test_kill_9_mid_download_then_restart",),
        "a killed runner's jobs stay leased forever (SQLite)",
    ),
    Mutation(
        "expired-leases-never-reclaimed-postgresql",
        "gateway/store/postgres/leases.py",
        """(locked_until IS NULL OR locked_until < $3)""",
        """(locked_until IS NULL OR locked_until < $3 - 1000000000)""",
        ("tests/e2e/test_replicas.py::test_killing_the_lease_holder_mid_download_loses_nothing",),
        "a killed replica's jobs stay leased forever (PostgreSQL)",
    ),
    # -- domain: budgets, prices, ranges, cache keys, schedule -----------------------------
    Mutation(
        "budget-fits-strict",
        "gateway/domain/budgets.py",
        """self.spent + self.reserved + cost <= self.limit""",
        """self.spent + self.reserved + cost < self.limit""",
        ("tests/domain/test_budgets.py",),
        "a cost that exactly fills the limit is refused",
    ),
    Mutation(
        "budget-remaining-negative",
        "gateway/domain/budgets.py",
        """        return max(0, self.limit - self.spent - self.reserved)""",
        """        return self.limit - self.spent - self.reserved""",
        ("tests/domain/test_budgets.py",),
        "an overspent budget reports negative remaining money",
    ),
    Mutation(
        "settle-charges-delivered-price",
        "gateway/domain/budgets.py",
        """    return min(reserved, delivered_price)""",
        """    return delivered_price""",
        ("tests/domain/test_budgets.py",),
        "a longer delivery is charged past the reservation the budget check admitted",
    ),
    Mutation(
        "month-end-in-november",
        "gateway/domain/budgets.py",
        """        if first.month == 12:""",
        """        if first.month == 11:""",
        ("tests/domain/test_budgets.py",),
        "the monthly window's end is wrong around the turn of the year",
    ),
    Mutation(
        "price-ignores-delivered-duration",
        "gateway/domain/pricing.py",
        """    return rate * seconds""",
        """    return rate * request.duration""",
        ("tests/domain/test_pricing.py",),
        "a job is priced at the asked duration, not the delivered one",
    ),
    Mutation(
        "reference-video-price-ignored",
        "gateway/domain/pricing.py",
        """    if has_reference_video and key in table.with_reference_video:""",
        """    if not has_reference_video and key in table.with_reference_video:""",
        ("tests/domain/test_pricing.py",),
        "requests with a reference video pay the plain price",
    ),
    Mutation(
        "range-suffix-off-by-one",
        "gateway/domain/ranges.py",
        """        return ByteRange(max(0, size - count), size)""",
        """        return ByteRange(max(0, size - count - 1), size)""",
        ("tests/domain/test_ranges.py",),
        "bytes=-N sends N+1 bytes",
    ),
    Mutation(
        "range-end-exclusive",
        "gateway/domain/ranges.py",
        """    end = _number(last) + 1 if last else size""",
        """    end = _number(last) if last else size""",
        ("tests/domain/test_ranges.py",),
        "bytes=a-b misses its last byte",
    ),
    Mutation(
        "range-start-at-size-satisfiable",
        "gateway/domain/ranges.py",
        """    if start >= size:""",
        """    if start > size:""",
        ("tests/domain/test_ranges.py",),
        "a range starting at the size is served empty instead of 416",
    ),
    Mutation(
        "weak-etag-not-matched",
        "gateway/domain/ranges.py",
        """[c.strip().removeprefix("W/") for c in if_none_match.split(",")]""",
        """[c.strip() for c in if_none_match.split(",")]""",
        ("tests/domain/test_ranges.py",),
        'If-None-Match: W/"..." no longer revalidates',
    ),
    Mutation(
        "cache-key-ignores-watermark",
        "gateway/domain/cache_keys.py",
        """        "watermark": request.watermark,\n""",
        "",
        ("tests/domain/test_cache_keys.py",),
        "a watermarked and an unwatermarked request share one video",
    ),
    Mutation(
        "cache-key-ignores-scope-id",
        "gateway/domain/cache_keys.py",
        """        "scope_id": scope_id,""",
        """        "scope_id": "",""",
        ("tests/domain/test_cache_keys.py",),
        "teams share cache entries (one team sees another's video)",
    ),
    Mutation(
        "backoff-ignores-retry-after",
        "gateway/domain/schedule.py",
        """        delay = max(delay, retry_after)""",
        """        delay = min(delay, retry_after)""",
        ("tests/domain/test_schedule.py",),
        "the runner polls sooner than the upstream's Retry-After",
    ),
    # -- admission (the store's money contract on both adapters, then dedupe end to end) ------
    Mutation(
        "follower-priced-like-leader",
        "gateway/domain/admission.py",
        """        cost_micros=0,  # the leader's reservation pays for both""",
        """        cost_micros=job.cost_micros,""",
        ("tests/domain/test_admission.py", *ADMISSION_TESTS),
        "a coalesced video shows (and would settle) the full price",
    ),
    Mutation(
        "expired-cache-entry-still-joined",
        "gateway/domain/admission.py",
        """        return self.expires_at is None or self.expires_at > now""",
        """        return True""",
        ("tests/domain/test_admission.py", *ADMISSION_TESTS),
        "an expired cache entry still serves hits",
    ),
    Mutation(
        "budget-lines-not-locked-postgresql",
        "gateway/store/postgres/money.py",
        """(" FOR UPDATE" if lock else "")""",
        """("" if lock else "")""",
        ("tests/store/test_money_contract.py", "tests/store/test_postgres.py"),
        "two replicas admit against the same budget at once and overspend it",
    ),
    Mutation(
        "revoked-key-admitted-sqlite",
        "gateway/store/sqlite/admission.py",
        """    _check_key_active(connection, job.key_id)\n""",
        "",
        ("tests/e2e/test_revocation.py",),
        "a replica whose key cache is stale admits paid jobs for a revoked key",
    ),
    Mutation(
        "revoked-key-admitted-postgresql",
        "gateway/store/postgres/admission.py",
        """    if revoked is None or revoked[0] is not None:""",
        """    if revoked is None:""",
        ("tests/e2e/test_revocation.py",),
        "a replica whose key cache is stale admits paid jobs for a revoked key",
    ),
    # -- completion --------------------------------------------------------------------------
    Mutation(
        "followers-not-completed",
        "gateway/store/sqlite/endings.py",
        """f" WHERE {_FOLLOWERS} RETURNING id, deleted_at\"""",
        """f" WHERE {_FOLLOWERS} AND 0 RETURNING id, deleted_at\"""",
        ADMISSION_TESTS,
        "videos joined to a leader never complete",
    ),
    Mutation(
        "deleted-follower-keeps-a-reference",
        "gateway/domain/outcomes.py",
        """sorted(follower_id for follower_id, deleted in followers if not deleted)""",
        """sorted(follower_id for follower_id, deleted in followers)""",
        ("tests/domain/test_outcomes.py", *ADMISSION_TESTS),
        "a deleted follower pins the video in storage forever",
    ),
    Mutation(
        "failure-charged-not-refunded",
        "gateway/domain/outcomes.py",
        """settlement(leader, charge=charge or None, now=now)""",
        """settlement(leader, charge=charge or 0, now=now)""",
        ("tests/domain/test_outcomes.py", "tests/store/test_money_contract.py"),
        "a failed job is recorded as a zero charge instead of a refund",
    ),
    Mutation(
        "completion-charge-not-capped",
        "gateway/services/jobs.py",
        """            charge=settle_amount(job.cost_micros, delivered),""",
        """            charge=delivered,""",
        ("tests/services",),
        "the runner charges a longer delivery past the reservation",
    ),
    Mutation(
        "completed-at-99-percent",
        "gateway/services/jobs.py",
        """            "progress": 100,""",
        """            "progress": 99,""",
        ("tests/services", "tests/e2e/test_sdk_flow.py"),
        "a finished video still reports 99 %",
    ),
    Mutation(
        "retention-in-hours",
        "gateway/services/jobs.py",
        """self._retention_days * 86400""",
        """self._retention_days * 3600""",
        ("tests/services", "tests/e2e/test_persistence.py"),
        "storage.retention_days deletes videos 24 times too early",
    ),
    # -- content serving ---------------------------------------------------------------------
    Mutation(
        "content-of-other-teams",
        "gateway/services/videos.py",
        """        job = await self._store.get_job(video_id, principal.team_id)""",
        """        job = await self._store.get_job(video_id)""",
        ("tests/e2e/test_sdk_flow.py", "tests/e2e/test_persistence.py"),
        "any key reads, deletes and downloads any team's videos",
    ),
    Mutation(
        "content-cacheable-by-shared-caches",
        "gateway/web/content.py",
        """        "Cache-Control": "private, max-age=86400",""",
        """        "Cache-Control": "public, max-age=86400",""",
        ("tests/e2e/test_persistence.py",),
        "a CDN or proxy between clients and the gateway may serve one team's video to another",
    ),
    Mutation(
        "any-if-none-match-is-304",
        "gateway/web/content.py",
        """    if etag_matches(request.headers.get("if-none-match"), etag):""",
        """    if request.headers.get("if-none-match"):""",
        ("tests/e2e/test_persistence.py",),
        "revalidating with another video's ETag answers 304",
    ),
    Mutation(
        "range-content-length-is-size",
        "gateway/web/content.py",
        """    headers["Content-Length"] = str(end - start)""",
        """    headers["Content-Length"] = str(asset.size)""",
        ("tests/e2e/test_persistence.py",),
        "a 206 announces the whole object's length",
    ),
)


def apply(mutation: Mutation, tree: Path) -> None:
    target = tree / mutation.path
    text = target.read_text()
    if problem := mismatch(mutation, text):
        raise LookupError(problem)
    target.write_text(text.replace(mutation.original, mutation.mutated))


def mismatch(mutation: Mutation, text: str) -> str | None:
    """Why the mutation cannot be applied to ``text`` (its file's contents), or None."""
    count = text.count(mutation.original)
    if count != 1:
        return f"{mutation.path}: the original snippet occurs {count} times, not once"
    return None


def stale(mutations: list[Mutation], tree: Path) -> list[str]:
    """One line per mutation whose snippet does not match ``tree`` exactly once (or whose file
    is gone): each is a mutation ``make mutate`` would not apply."""
    problems = []
    for mutation in mutations:
        target = tree / mutation.path
        problem = (
            mismatch(mutation, target.read_text())
            if target.is_file()
            else f"{mutation.path}: no such file"
        )
        if problem:
            problems.append(f"{mutation.name}: {problem}")
    return problems


def run(mutation: Mutation) -> tuple[str, str, float]:
    """(verdict, first failing test or detail, seconds) for one mutation on a fresh copy."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutation.name}-") as tmp:
        tree = Path(tmp) / "tree"
        shutil.copytree(ROOT, tree, ignore=COPY_IGNORES)
        try:
            apply(mutation, tree)
        except LookupError as exc:
            return "error", str(exc), time.monotonic() - started
        env = {**os.environ, "PYTHONPATH": str(tree)}
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf"]
        result = subprocess.run(  # noqa: S603 - our own interpreter and test paths
            [*command, *mutation.tests],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    elapsed = time.monotonic() - started
    failed = re.findall(r"^FAILED (\S+)", result.stdout, re.M)
    if result.returncode == 0:
        return "SURVIVED", "", elapsed
    if result.returncode == 1 and failed:
        return "killed", failed[0], elapsed
    return "error", f"pytest exit {result.returncode}: {result.stdout[-400:]}", elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only these mutations")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    if unknown := set(args.names) - {m.name for m in MUTATIONS}:
        parser.error(f"unknown mutations: {', '.join(sorted(unknown))}")
    if args.list:
        for mutation in chosen:
            print(f"{mutation.name}\t{mutation.path}\t{mutation.why}")
        return 0
    if problems := stale(chosen, ROOT):
        # Checked before any test runs: a mutation that cannot be applied tests nothing.
        print("mutations whose snippet no longer matches the code (update them):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    survivors = errors = 0
    for mutation in chosen:
        verdict, detail, elapsed = run(mutation)
        survivors += verdict == "SURVIVED"
        errors += verdict == "error"
        print(f"{verdict:8} {mutation.name:42} {elapsed:6.0f} s  {detail}", flush=True)
    print(f"{len(chosen)} mutations: {survivors} survived, {errors} errors")
    return 1 if survivors or errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
