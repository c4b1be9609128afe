"""Where and on what the benchmark ran: CPU count and model, kernel, tool versions, git commit."""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass

from bench.servers import ROOT


def _output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    except OSError:
        return ""
    return (done.stdout or done.stderr).strip()


@dataclass(frozen=True)
class Machine:
    cpus: str
    cpu_model: str
    kernel: str
    python: str
    wrk: str
    nginx: str
    commit: str

    def line(self) -> str:
        return (
            f"{self.cpus} CPUs ({self.cpu_model}), Linux {self.kernel}, Python {self.python}, "
            f"{self.wrk}, {self.nginx}"
        )


def _cpu_model() -> str:
    for line in _output(["lscpu"]).splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "Model name":
            return value.strip()
    return platform.processor() or "unknown"


def _commit() -> str:
    commit = _output(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    # Dirty means the code under test differs from the commit; the harness itself does not count.
    dirty = _output(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench"])
    return f"{commit}+dirty" if dirty else commit


def describe_machine() -> Machine:
    wrk = _output(["wrk", "-v"]).splitlines()
    nginx = _output(["nginx", "-v"]).removeprefix("nginx version: ")
    return Machine(
        cpus=_output(["nproc"]) or "?",
        cpu_model=_cpu_model(),
        kernel=platform.release(),
        python=platform.python_version(),
        wrk=" ".join(wrk[0].split()[:2]) if wrk else "wrk not installed",
        nginx=nginx or "nginx not installed",
        commit=_commit(),
    )
