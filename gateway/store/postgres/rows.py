"""The job row codec of the PostgreSQL adapter: columns, the SELECT and INSERT statements, rows
<-> ``Job`` records and the ``SET`` clause of a ``JobChanges``; and reading a command tag.

Only this module (and its SQLite twin) turns a stored ``request_json`` into the typed
``VideoRequest`` and back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from gateway.domain.video_request import VideoRequest
from gateway.store.records import UPDATABLE_JOB_FIELDS, Job, JobChanges

if TYPE_CHECKING:
    from gateway.store.postgres.database import Connection

# The jobs columns are the ``Job`` fields, with ``request`` stored as ``request_json``.
JOB_COLUMN_NAMES = tuple(
    "request_json" if field.name == "request" else field.name for field in dataclasses.fields(Job)
)
JOB_COLUMNS = ", ".join(JOB_COLUMN_NAMES)
# The job columns qualified, for statements that join ``jobs`` with another relation.
JOB_COLUMNS_OF_JOBS = ", ".join(f"jobs.{column}" for column in JOB_COLUMN_NAMES)
# BIGINT columns: asyncpg would silently truncate a fractional float sent to one.
_WHOLE_COLUMNS = frozenset(
    {
        "progress",
        "created_at",
        "updated_at",
        "completed_at",
        "deleted_at",
        "attempts",
        "expires_at",
        "price_micros",
        "cost_micros",
        "charged_micros",
        "delivered_seconds",
    }
)
VISIBLE_JOB = "deleted_at IS NULL AND status != 'rejected'"
RUNNABLE = "('submitting', 'submit_unknown', 'queued', 'in_progress', 'downloading')"
# Column lists are constants, never input: S608 (SQL built from strings) does not apply.
SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs"  # noqa: S608
INSERT_JOB = (
    f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES"  # noqa: S608
    f" ({', '.join(f'${n}' for n in range(1, len(JOB_COLUMN_NAMES) + 1))})"
)


def column_value(name: str, value: Any) -> Any:
    """``value`` as its column stores it: whole numbers for BIGINT columns (as SQLite does
    with a float like 5.0), never a fraction silently truncated."""
    if name in _WHOLE_COLUMNS and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"job field {name} must be a whole number, got {value!r}")
        return int(value)
    return value


def job_assignments(changes: JobChanges, first: int = 1) -> tuple[str, list[Any]]:
    """``SET`` clause (placeholders from ``$first``) and parameters for ``changes``. mypy checks
    the keys; at run time only the columns of ``JobChanges`` are ever spliced into the SQL."""
    columns: Mapping[str, object] = changes
    forbidden = sorted(set(columns) - UPDATABLE_JOB_FIELDS)
    if forbidden:
        raise ValueError(f"job fields cannot be updated: {', '.join(forbidden)}")
    fields = sorted(columns)  # columns of JobChanges (checked above): safe in the SQL
    clause = ", ".join(f"{field} = ${n}" for n, field in enumerate(fields, start=first))
    return clause, [column_value(field, columns[field]) for field in fields]


def job_from_row(row: asyncpg.Record) -> Job:
    values = dict(zip(JOB_COLUMN_NAMES, row.values(), strict=True))
    request = VideoRequest.from_json(orjson.loads(values.pop("request_json")))
    return Job(request=request, **values)


def job_or_none(row: asyncpg.Record | None) -> Job | None:
    return job_from_row(row) if row is not None else None


async def reread(connection: Connection, job_id: str) -> Job:
    """The job as this transaction left it (it changed the row, so the row exists)."""
    row = await connection.fetchrow(SELECT_JOB + " WHERE id = $1", job_id)
    assert row is not None  # changed in this very transaction
    return job_from_row(row)


def job_row(job: Job) -> list[Any]:
    """The row for ``job``, in ``JOB_COLUMN_NAMES`` order."""
    return [
        orjson.dumps(job.request.to_json()).decode()
        if name == "request_json"
        else column_value(name, getattr(job, name))
        for name in JOB_COLUMN_NAMES
    ]


def changed_one(tag: str) -> bool:
    """Whether a command tag (``UPDATE 1``, ``DELETE 0``, ``INSERT 0 1``) says one row changed."""
    return tag.endswith(" 1")


def changed_count(tag: str) -> int:
    """How many rows a command tag says changed."""
    return int(tag.split()[-1])
