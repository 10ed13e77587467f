"""The database's clock, for every time the queue writes or compares.

A lease is written by one host and judged by others (any worker reaps expired leases), and
hosts' clocks differ, so on PostgreSQL lease deadlines, start and finish times are now()
(the transaction's start) plus an interval, computed by the server. The columns are
`timestamp with time zone` there, so the session's time zone changes nothing stored.
SQLite serves one host: its clock is the host's, bound like any DateTime value SQLAlchemy
writes (naive UTC text), so that comparisons with stored times stay right.
"""

from __future__ import annotations

import typing
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, func, literal
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, select


def database_now(session: Session, *, plus_s: float = 0.0) -> ColumnElement[datetime]:
    """The database's current time, plus `plus_s` seconds, as an SQL expression."""
    if session.get_bind().dialect.name == "postgresql":
        now: ColumnElement[datetime] = func.now(type_=DateTime(timezone=True))
        return now + timedelta(seconds=plus_s) if plus_s else now
    return literal(datetime.now(UTC) + timedelta(seconds=plus_s), DateTime(timezone=True))


def stamp_now(session: Session) -> datetime:
    """database_now() for a row's datetime attribute: the ORM writes the expression as it is,
    and the database evaluates it when the row is flushed."""
    return typing.cast(datetime, database_now(session))


def database_time(session: Session) -> datetime:
    """The database's current time as a value (on PostgreSQL, the transaction's start: the same
    moment database_now() writes in this transaction)."""
    moment = session.exec(select(database_now(session))).one()
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
