"""Run pytest while every core is kept busy: proof that the tests do not depend on machine speed.

Starts one CPU burner process per core (plain Python busy loops, lowest priority would defeat the
purpose, so they run at the default one), runs pytest with the arguments given, then stops the
burners it started (by their process ids) whatever happened. Exits with pytest's status.

Usage: python scripts/stress.py [--burners N] [--rounds R] -- PYTEST_ARGS...
(`make test-stress` runs the end-to-end and service tests this way, see docs/testing.md)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

BURN = "while True:\n    pass\n"


def start_burners(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(count)]  # noqa: S603 - our own code


def stop_burners(burners: list[subprocess.Popen[bytes]]) -> None:
    for burner in burners:
        burner.terminate()
    for burner in burners:
        try:
            burner.wait(timeout=10)
        except subprocess.TimeoutExpired:
            burner.kill()
            burner.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, default=1, help="run pytest this many times")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    pytest_args = [a for a in args.pytest_args if a != "--"]
    status = 0
    for round_number in range(1, args.rounds + 1):
        burners = start_burners(args.burners)
        started = time.monotonic()
        try:
            status = subprocess.call([sys.executable, "-m", "pytest", *pytest_args])  # noqa: S603
        finally:
            stop_burners(burners)
        elapsed = time.monotonic() - started
        verdict = "passed" if status == 0 else f"FAILED (exit {status})"
        print(
            f"stress round {round_number}/{args.rounds}: {verdict} in {elapsed:.0f} s"
            f" with {args.burners} CPU burners",
            flush=True,
        )
        if status != 0:
            break
    return status


if __name__ == "__main__":
    raise SystemExit(main())
