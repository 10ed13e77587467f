"""Finding jobs (GET /jobs): sorts, and the keyset cursor that pages through any sort (the
filters are app.filters).

A page is the jobs after the previous page's last one in the sort's order, compared on the sort's
key and then the id, so that inserts and deletes between pages neither repeat nor skip a job that
stays. Jobs without a value for the key (no epoch yet, no name, never started) come last in both
directions. The cursor carries its sort, and for `duration` the moment durations are measured at,
so that running jobs, whose duration grows, keep their place while a client pages.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import HTTPException
from sqlalchemy import DateTime, Float, asc, desc, func, literal, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, col, select

from app.filters import JobFilters, as_utc, conditions
from app.models import Job, utcnow


class JobSort(enum.StrEnum):
    newest = "-created_at"  # the default: newest first
    oldest = "created_at"
    best_accuracy = "-best_val_accuracy"  # best_val_accuracy, highest first
    worst_accuracy = "best_val_accuracy"
    name_descending = "-name"
    name = "name"
    longest = "-duration"  # duration_seconds, longest first
    shortest = "duration"

    @property
    def descending(self) -> bool:
        return self.value.startswith("-")

    @property
    def field(self) -> str:
        return self.value.removeprefix("-")

    @property
    def nullable(self) -> bool:
        return self.field != "created_at"


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: its last job's sort key and id."""

    sort: JobSort
    value: Any
    job_id: str
    measured_at: datetime | None = None  # duration sorts: "now", fixed for every page

    def encode(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        measured_at = self.measured_at.isoformat() if self.measured_at is not None else None
        raw = json.dumps([self.sort.value, value, self.job_id, measured_at], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, sort: JobSort) -> Cursor:
        """422 for a cursor that no page of this sort sent."""
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            made_for, value, job_id, measured_at = raw
            made_for = JobSort(made_for)
            if not isinstance(job_id, str):
                raise ValueError("the id is not a string")
            value = _key_value(made_for, value)
            measured = None if measured_at is None else as_utc(datetime.fromisoformat(measured_at))
            if made_for.field == "duration" and measured is None:
                raise ValueError("a duration cursor needs its moment")
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError) as exc:
            raise _cursor_error(
                "cursor is not valid: pass next_cursor from a previous page unchanged"
            ) from exc
        if made_for != sort:
            raise _cursor_error(
                f"this cursor pages sort={made_for.value}, not sort={sort.value}: "
                "use it with the sort it came from, or start again without a cursor"
            )
        return cls(sort=made_for, value=value, job_id=job_id, measured_at=measured)


def _key_value(sort: JobSort, value: object) -> Any:
    if value is None:
        if not sort.nullable:
            raise ValueError(f"{sort.field} is never null")
        return None
    if sort.field == "created_at" and isinstance(value, str):
        return as_utc(datetime.fromisoformat(value))
    if sort.field == "name" and isinstance(value, str):
        return value
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if sort.field in {"best_val_accuracy", "duration"} and numeric:
        return float(value)  # type: ignore[arg-type]
    raise ValueError(f"not a {sort.field} value")


def _cursor_error(message: str) -> HTTPException:
    # Shaped like every other 422, so clients handle one format.
    return HTTPException(
        status_code=422, detail=[{"loc": ["query", "cursor"], "msg": message, "type": "value_error"}]
    )


class seconds_between(FunctionElement[float]):
    """seconds_between(start, end): end - start in seconds, as a float, in SQLite and PostgreSQL."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_postgresql(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION)"


def duration_key(measured_at: datetime) -> ColumnElement[float]:
    """duration_seconds in SQL: finished_at - started_at once the job ended, measured_at -
    started_at before; NULL for a job that never started."""
    now = literal(measured_at, DateTime(timezone=True))
    return seconds_between(col(Job.started_at), func.coalesce(col(Job.finished_at), now))


def _sort_key(sort: JobSort, measured_at: datetime) -> ColumnElement[Any]:
    if sort.field == "duration":
        return duration_key(measured_at)
    column: ColumnElement[Any] = getattr(Job, sort.field)
    return column


def page_of_jobs(
    session: Session,
    *,
    filters: JobFilters,
    sort: JobSort,
    limit: int,
    cursor: Cursor | None = None,
    owner: str | None = None,
) -> tuple[list[Job], str | None]:
    """One page of the jobs `owner` may see (all for None) that match, and the cursor of the next
    page (None after the last).

    Jobs with a key come first, then those without: two plain range queries (the second only when
    the first runs out), each of which an index on (key, id) serves in either direction, where
    one query with NULLS LAST and an OR would have PostgreSQL sort every match."""
    measured_at = cursor.measured_at if cursor and cursor.measured_at else utcnow()
    key = _sort_key(sort, measured_at)
    base = select(Job, key.label("sort_value")).where(*conditions(filters))
    if owner is not None:
        base = base.where(Job.owner == owner)
    direction = desc if sort.descending else asc
    rows: list[tuple[Job, Any]] = []
    if cursor is None or cursor.value is not None:
        keyed = base.where(key.is_not(None)) if sort.nullable else base
        if cursor is not None:
            # A row-value comparison, which SQLite and PostgreSQL answer with an index range.
            mine, theirs = tuple_(key, col(Job.id)), tuple_(literal(cursor.value, key.type), cursor.job_id)
            keyed = keyed.where(mine < theirs if sort.descending else mine > theirs)
        query = keyed.order_by(direction(key), direction(col(Job.id))).limit(limit + 1)
        rows += session.exec(query).all()
    if sort.nullable and len(rows) <= limit:
        unkeyed = base.where(key.is_(None))
        if cursor is not None and cursor.value is None:
            later = col(Job.id) < cursor.job_id if sort.descending else col(Job.id) > cursor.job_id
            unkeyed = unkeyed.where(later)
        query = unkeyed.order_by(direction(col(Job.id))).limit(limit + 1 - len(rows))
        rows += session.exec(query).all()
    next_cursor = None
    if len(rows) > limit:
        last, value = rows[limit - 1]
        keep = measured_at if sort.field == "duration" else None
        next_cursor = Cursor(sort=sort, value=value, job_id=last.id, measured_at=keep).encode()
    return [job for job, _ in rows[:limit]], next_cursor
