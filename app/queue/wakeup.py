"""Waking idle workers when a job is queued: PostgreSQL's LISTEN/NOTIFY.

submit, release and requeue_expired NOTIFY on CHANNEL inside their transaction, so a worker
hears of a job once it is committed. Heartbeats, progress and epochs never notify: PostgreSQL
serialises the commits of notifying transactions, and those writes are the frequent ones.

A notification is only a hint; polling has_queued stays the truth. While its LISTEN connection
is up, an idle worker polls every LISTENING_POLL_S (or its poll_interval_seconds, if longer);
without one (SQLite, or the connection died) every poll_interval_seconds. So a notification
that is lost (a dropped connection, a worker that was busy) costs at most one poll, never a job,
and a dead LISTEN connection is opened again at a later wait.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import psycopg
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import URL
from sqlmodel import Session

logger = logging.getLogger(__name__)

CHANNEL = "trainq_jobs"
LISTENING_POLL_S = 1.0
WAIT_SLICE_S = 0.1  # how soon a wait notices its stop event
RECONNECT_S = 5.0  # between attempts to open a LISTEN connection that failed to open
CONNECT_TIMEOUT_S = 5
APPLICATION_NAME = "trainq-wakeup"  # how the LISTEN connections show in pg_stat_activity


def notify_queued(session: Session, *, job_id: str) -> None:
    """Tell listening workers, when this transaction commits, that the job is queued."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(CHANNEL, job_id)))


class Waiter(Protocol):
    """An idle worker's wait for work: ends early on a notification or on the stop event."""

    @property
    def poll_interval_s(self) -> float: ...

    def wait(self, timeout_s: float) -> bool:
        """Whether a notification ended the wait (False: timed out or stopped)."""
        ...

    def close(self) -> None: ...


def waiter_for(engine: Engine, *, stop: threading.Event, poll_interval_s: float) -> Waiter:
    if engine.dialect.name == "postgresql":
        return Listener(engine.url, stop=stop, poll_interval_s=poll_interval_s)
    return StopWait(stop=stop, poll_interval_s=poll_interval_s)


class StopWait:
    """SQLite has no notifications: a wait is a wait on the stop event."""

    def __init__(self, *, stop: threading.Event, poll_interval_s: float) -> None:
        self._stop = stop
        self.poll_interval_s = poll_interval_s

    def wait(self, timeout_s: float) -> bool:
        self._stop.wait(timeout_s)
        return False

    def close(self) -> None:
        pass


class Listener:
    """A dedicated connection (outside the engine's pool) that LISTENs on CHANNEL."""

    def __init__(self, url: URL, *, stop: threading.Event, poll_interval_s: float) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._stop = stop
        self._fallback_poll_s = poll_interval_s
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None
        self._next_connect = 0.0
        self._connect()

    @property
    def listening(self) -> bool:
        return self._connection is not None

    @property
    def poll_interval_s(self) -> float:
        if self.listening:
            return max(self._fallback_poll_s, LISTENING_POLL_S)
        return self._fallback_poll_s

    def wait(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        if self._connection is None and time.monotonic() >= self._next_connect:
            self._connect()
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._connection is None:
                self._stop.wait(left)
                return False
            try:
                if list(self._connection.notifies(timeout=min(left, WAIT_SLICE_S), stop_after=1)):
                    # Several jobs queued while this worker was busy wake it once, not once each.
                    list(self._connection.notifies(timeout=0))
                    return True
            except psycopg.Error as exc:
                logger.warning("LISTEN connection lost (%s); polling until it is back", exc)
                self.close()
        return False

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> None:
        connection = None
        try:
            connection = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name=APPLICATION_NAME,
                # A connection that a network silently dropped is noticed within a minute or so.
                keepalives=1,
                keepalives_idle=30,
                keepalives_interval=10,
                keepalives_count=3,
            )
            connection.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            if connection is not None:
                connection.close()
            self._next_connect = time.monotonic() + RECONNECT_S
            logger.warning("could not LISTEN for new jobs (%s); polling meanwhile", exc)
            return
        self._connection = connection
