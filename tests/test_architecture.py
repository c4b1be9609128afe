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


MAX_FUNCTION_LINES = 50
ROOT = PACKAGE.parent


def function_lengths(path: Path, root: Path = ROOT) -> dict[str, int]:
    """Lines of every function and method in ``path``, from its ``def`` line to its last line
    (decorators left out, the docstring counted), by ``file::name`` (the longest of a name)."""
    lengths: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            where = f"{path.relative_to(root).as_posix()}::{node.name}"
            lengths[where] = max(lengths.get(where, 0), node.end_lineno - node.lineno + 1)
    return lengths


def checked_sources() -> list[Path]:
    """``gateway/`` (both store adapter packages included), ``bench/`` and ``scripts/``."""
    paths = [*PACKAGE.rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    paths += (ROOT / "scripts").rglob("*.py")
    return sorted(paths)


def test_functions_stay_short():
    """No function over 50 lines: a long one is several steps that deserve names (#12)."""
    too_long = {
        where: lines
        for path in checked_sources()
        for where, lines in function_lengths(path).items()
        if lines > MAX_FUNCTION_LINES
    }
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_function_length_counts_from_def_to_last_line(tmp_path: Path):
    body = "".join(f"    x{i} = {i}\n" for i in range(50))
    path = tmp_path / "example.py"
    path.write_text(f"@decorator\n@another\nasync def long():\n{body}\n\ndef short():\n    pass\n")
    assert function_lengths(path, tmp_path) == {"example.py::long": 51, "example.py::short": 2}


# What a store adapter package may import from the gateway: the domain, the port's shared
# modules (records, ports, and the row helpers both dialects share), and its own package.
ADAPTER_MAY_IMPORT = (
    "gateway.domain",
    "gateway.errors",
    "gateway.ids",
    "gateway.store.base",
    "gateway.store.records",
    "gateway.store.ports",
    "gateway.store.browsing",
    "gateway.store.audit",
    "gateway.store.listing",
    "gateway.store.migrations",
    "gateway.store.webhook_records",
    "gateway.store.webhook_rows",
)
ADAPTERS = {"sqlite": "SqliteStore", "postgres": "PostgresStore"}


def adapter_package(name: str) -> Path:
    package = PACKAGE / "store" / name
    if not package.is_dir():
        pytest.skip(f"gateway/store/{name} is not a package yet")
    return package


@pytest.mark.parametrize("name", ADAPTERS)
def test_an_adapter_imports_only_the_port_the_domain_and_itself(name: str):
    """Adapters never reach into services, web, other ports or the other adapter."""
    own = f"gateway.store.{name}"
    for path in sorted(adapter_package(name).rglob("*.py")):
        bad = {
            n
            for n in imports_of(path)
            if n.startswith("gateway")
            and not n.startswith((*ADAPTER_MAY_IMPORT, own))
            and n != "gateway"
        }
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


@pytest.mark.parametrize("name", ADAPTERS)
def test_an_adapter_is_one_flat_class_of_short_methods(name: str):
    """The store class inherits nothing and its methods delegate: one to three lines each."""
    tree = ast.parse((adapter_package(name) / "store.py").read_text())
    (store,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == ADAPTERS[name]]
    assert not store.bases, f"{store.name} has base classes"
    for method in store.body:
        if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
            body = [s for s in method.body if not _is_docstring(s)]
            lines = body[-1].end_lineno - body[0].lineno + 1
            assert lines <= 3, f"{store.name}.{method.name} has {lines} lines"


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)


def test_the_port_never_imports_an_adapter():
    """Of the shared store modules only ``opening.py`` names the adapter packages (and imports
    one, lazily, when a URL asks for it)."""
    adapters = tuple(f"gateway.store.{name}" for name in ADAPTERS)
    for path in (PACKAGE / "store").glob("*.py"):
        if path.name != "opening.py":
            assert not any(n.startswith(adapters) for n in imports_of(path)), path.name
