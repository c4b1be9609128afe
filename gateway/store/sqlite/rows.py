"""The job row codec of the SQLite adapter and the few statement helpers every module uses.

Job rows are decoded and encoded only here (``job_from_row``/``job_row``): ``Job.request`` is
the typed ``VideoRequest``, stored as ``request_json``; a job update splices only the columns of
``JobChanges`` (``job_assignments``).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from gateway.domain.video_request import VideoRequest
from gateway.store.base import UPDATABLE_JOB_FIELDS, Job, JobChanges
from gateway.store.listing import list_select

Row = sqlite3.Row

# The jobs columns are the ``Job`` fields, with ``request`` stored as ``request_json``.
JOB_COLUMN_NAMES = tuple(
    "request_json" if field.name == "request" else field.name for field in dataclasses.fields(Job)
)
JOB_COLUMNS = ", ".join(JOB_COLUMN_NAMES)
VISIBLE_JOB = "deleted_at IS NULL AND status != 'rejected'"
# Column lists are constants, never input: S608 (SQL built from strings) does not apply.
SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs"  # noqa: S608
SELECT_JOB_BY_ID = SELECT_JOB + " WHERE id = ?"
INSERT_JOB = f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join('?' * len(JOB_COLUMN_NAMES))})"  # noqa: S608
LIST_JOBS = list_select(JOB_COLUMN_NAMES)
_JOB_FIELD_NAMES = tuple(field.name for field in dataclasses.fields(Job))
_REQUEST_INDEX = _JOB_FIELD_NAMES.index("request")


def job_from_row(row: Row) -> Job:
    # The columns are the Job fields in order (see JOB_COLUMN_NAMES): positional is exact.
    values = list(row)
    if len(values) != len(JOB_COLUMN_NAMES):
        raise ValueError(f"a job row has {len(JOB_COLUMN_NAMES)} columns, got {len(values)}")
    values[_REQUEST_INDEX] = VideoRequest.from_json(orjson.loads(values[_REQUEST_INDEX]))
    return Job(*values)


def job_row(job: Job) -> tuple[Any, ...]:
    """The row for ``job``, in ``JOB_COLUMN_NAMES`` order."""
    values = [getattr(job, name) for name in _JOB_FIELD_NAMES]
    values[_REQUEST_INDEX] = orjson.dumps(job.request.to_json()).decode()
    return tuple(values)


def job_assignments(changes: JobChanges) -> tuple[str, tuple[Any, ...]]:
    """``SET`` clause and parameters for ``changes``. mypy checks the keys; at run time only
    the columns of ``JobChanges`` are ever spliced into the SQL."""
    columns: Mapping[str, object] = changes
    forbidden = sorted(set(columns) - UPDATABLE_JOB_FIELDS)
    if forbidden:
        raise ValueError(f"job fields cannot be updated: {', '.join(forbidden)}")
    fields = sorted(columns)  # columns of JobChanges (checked above): safe in the SQL
    return ", ".join(f"{field} = ?" for field in fields), tuple(columns[f] for f in fields)


def fetchall(connection: sqlite3.Connection, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
    return connection.execute(sql, parameters).fetchall()


def fetchone(
    connection: sqlite3.Connection, sql: str, parameters: Sequence[Any] = ()
) -> Row | None:
    """The first row, or None. Reads every row, so a ``RETURNING`` statement is finished."""
    rows = connection.execute(sql, parameters).fetchall()
    return rows[0] if rows else None


def changed_one(connection: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> bool:
    return bool(connection.execute(sql, parameters).rowcount == 1)


def job_or_none(connection: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> Job | None:
    row = fetchone(connection, sql, parameters)
    return job_from_row(row) if row is not None else None


def reread(connection: sqlite3.Connection, job_id: str) -> Job:
    """The job as this very transaction left it."""
    job = job_or_none(connection, SELECT_JOB_BY_ID, (job_id,))
    assert job is not None  # changed in this very transaction
    return job
