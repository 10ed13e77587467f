"""Engines and sessions.

SQLite is shared by any number of API and worker processes, so every
connection runs in WAL mode with a busy timeout, and write transactions take
the write lock up front (BEGIN IMMEDIATE): a deferred transaction that reads
and then writes can fail with "database is locked" without waiting, because
SQLite cannot upgrade its read lock while another writer holds the lock.
Reads stay deferred so they never queue behind writers. Within one process, writers to a
SQLite file queue on a lock of their own first: SQLite's busy handler polls for the write lock
with sleeps of up to 100 ms, so dozens of request threads contending for it wait out those sleeps
while the lock lies free (POST /jobs at 64 clients answered 45 req/s, and at times nothing for
seconds); a lock hands over at once, leaving the busy timeout to contention between processes.

A PostgreSQL connection is a server process, and the server allows max_connections (100 by
default) in all, so each process asks for a bounded pool: the API a pool for its request
threads (API_POOL), a worker a couple of connections (WORKER_POOL). SQLite connections are
file handles: one per thread that may need one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
# One connection for each thread that can run a request at once (anyio's default thread
# limit), so that under load no request waits for a connection after it got a thread.
SQLITE_POOL_SIZE = 40
_IMMEDIATE = "trainq_immediate"
# This process's writers of each SQLite file, by the file's resolved path (tests open one file
# through several engines). Reentrant: a nested write would wait for SQLite, not for itself.
_SQLITE_WRITERS: dict[Path, threading.RLock] = {}
_SQLITE_WRITERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Pool:
    """How many PostgreSQL connections a process keeps open (size), and opens beyond those
    for a burst and closes again (overflow); past both, a session waits for a connection."""

    size: int
    overflow: int


# Requests mostly hold a connection for a few milliseconds; 20 serve anyio's 40 threads.
API_POOL = Pool(size=10, overflow=10)
# The claim/record loop, the lease renewer and the registry's heartbeat (app.queue.workers),
# each one at a time.
WORKER_POOL = Pool(size=2, overflow=1)


def make_engine(url: str, *, pool: Pool = API_POOL) -> Engine:
    """An engine for a SQLite or PostgreSQL URL; `pool` bounds PostgreSQL's connections."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool.size,
            max_overflow=pool.overflow,
            # The tables hold UTC times: a server in another zone must not shift them.
            connect_args={"options": "-c timezone=utc"},
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=0,
    )
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so it can choose IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


def writer(engine: Engine) -> Engine:
    """The same engine (and pool), whose transactions take SQLite's write lock at BEGIN."""
    return engine.execution_options(**{_IMMEDIATE: True})


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A transaction that holds the write lock from its first statement; commits on success."""
    with (
        _process_writers(engine),
        Session(writer(engine), expire_on_commit=False) as session,
        session.begin(),
    ):
        yield session


def _process_writers(engine: Engine) -> AbstractContextManager[Any]:
    """The lock this process's writers of the engine's SQLite file take before SQLite's own."""
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return nullcontext()
    path = Path(database).resolve()
    with _SQLITE_WRITERS_LOCK:
        return _SQLITE_WRITERS.setdefault(path, threading.RLock())
