"""Numbered SQL migrations per dialect, shipped as package data and read with importlib.resources.

Files live in ``migrations/<dialect>/NNNN_description.sql``; versions run 1, 2, 3... without gaps.
This module only finds and reads them: applying them is each adapter's ``migrate()``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@functools.cache
def load_migrations(dialect: str) -> tuple[Migration, ...]:
    """Every migration shipped for ``dialect``, in version order."""
    folder = resources.files(__name__).joinpath(dialect)
    if not folder.is_dir():
        raise ValueError(f"no migrations shipped for dialect {dialect!r}")
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILENAME.match(entry.name)
        if match is None:
            raise ValueError(
                f"badly named migration {dialect}/{entry.name}: expected NNNN_description.sql"
            )
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(
            f"{dialect} migrations must be numbered 1, 2, 3... without gaps: {versions}"
        )
    return tuple(found)


def latest_version(dialect: str) -> int:
    """The highest version shipped for ``dialect`` (0 when there is none)."""
    migrations = load_migrations(dialect)
    return migrations[-1].version if migrations else 0
