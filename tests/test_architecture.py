"""Import boundaries hold: web -> services -> domain, and only app/cli know concrete adapters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gateway"
IO_LIBRARIES = {
    "httpx",
    "aiosqlite",
    "asyncpg",
    "sqlite3",
    "starlette",
    "uvicorn",
    "aiohttp",
    "socket",
    "asyncio",
    "prometheus_client",
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", modules("domain"), ids=lambda p: p.name)
def test_domain_is_pure(path: Path):
    bad = {n for n in imports_of(path) if top(n) in IO_LIBRARIES}
    bad |= {
        n
        for n in imports_of(path)
        if n.startswith("gateway.")
        and not (n.startswith("gateway.domain") or n == "gateway.errors")
    }
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("name", ["mp4.py", "images.py"])
def test_media_checks_are_pure(name: str):
    """Byte-format checks run on untrusted input: values in, verdicts out, no I/O."""
    path = PACKAGE / "media" / name
    names = imports_of(path)
    bad = {n for n in names if top(n) in IO_LIBRARIES}
    bad |= {n for n in names if n.startswith("gateway.") and not n.startswith("gateway.media")}
    assert not bad, f"{path.name} imports {bad}"


def test_only_web_app_and_sandbox_import_starlette():
    allowed = ("web", "sandbox")
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in allowed or rel.name in ("app.py", "cli.py"):
            continue
        assert "starlette" not in {top(n) for n in imports_of(path)}, rel


@pytest.mark.parametrize("layer", ["services", "domain", "store", "upstream", "blobs"])
def test_lower_layers_never_import_web(layer: str):
    for path in modules(layer):
        assert not any(n.startswith("gateway.web") for n in imports_of(path)), path


@pytest.mark.parametrize("layer", ["services", "web", "domain"])
def test_concrete_adapters_only_in_app_and_cli(layer: str):
    concrete = (
        "gateway.store.sqlite",
        "gateway.store.postgres",
        "gateway.sandbox",
        "gateway.upstream.client",  # services speak the upstream port (upstream/port.py)
        "gateway.upstream.transport",
    )
    for path in modules(layer):
        assert not any(n.startswith(concrete) for n in imports_of(path)), path


def test_modules_stay_small():
    for path in PACKAGE.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 500, f"{path.relative_to(PACKAGE)} has {lines} lines"
