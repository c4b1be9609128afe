"""Every benchmark module imports against today's code.

No test runs the benchmark (it needs a quiet machine), so a moved store module or a changed
record type would otherwise break ``make bench`` unnoticed until someone measures.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench

MODULES = sorted(info.name for info in pkgutil.iter_modules(bench.__path__, prefix="bench."))


def test_the_benchmark_has_modules() -> None:
    assert "bench.run" in MODULES
    assert "bench.seed" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_bench_module_imports(name: str) -> None:
    importlib.import_module(name)
