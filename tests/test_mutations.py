"""``make mutate`` applies every mutation: each snippet of ``scripts/mutate.py`` still matches
the code exactly once, and a stale one stops the run before any test starts."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "scripts" / "mutate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate"] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["mutate"]
    return module


def test_every_mutation_applies_to_the_code(mutate: ModuleType):
    assert mutate.stale(list(mutate.MUTATIONS), ROOT) == []


def test_a_stale_snippet_stops_the_run_before_any_test(
    mutate: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    mutation = next(m for m in mutate.MUTATIONS if m.name == "range-end-exclusive")
    target = tmp_path / mutation.path
    target.parent.mkdir(parents=True)
    shutil.copy(ROOT / mutation.path, target)
    target.write_text(target.read_text().replace(mutation.original, "    end = size"))
    monkeypatch.setattr(mutate, "ROOT", tmp_path)

    def run(mutation: object) -> None:
        raise AssertionError("no mutation may run while one is stale")

    monkeypatch.setattr(mutate, "run", run)
    assert mutate.main(["range-end-exclusive", "range-start-at-size-satisfiable"]) == 2
    err = capsys.readouterr().err
    assert (
        "range-end-exclusive: gateway/domain/ranges.py: the original snippet occurs 0 times" in err
    )
    assert "range-start-at-size-satisfiable" not in err


def test_a_mutation_of_a_missing_file_is_stale(mutate: ModuleType, tmp_path: Path):
    mutation = next(m for m in mutate.MUTATIONS if m.name == "range-end-exclusive")
    assert mutate.stale([mutation], tmp_path) == [
        "range-end-exclusive: gateway/domain/ranges.py: no such file"
    ]
