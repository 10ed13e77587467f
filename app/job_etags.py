"""ETags for the routes that pollers call (GET /jobs/{id} and /jobs/{id}/metrics), and a cache of
their serialised bodies keyed by the same version.

A job's version is a digest of everything its body is built from: the job's row (every column),
the count and largest id of its metric rows and of its checkpoints (rows are only inserted or
deleted, never changed in place: a retried epoch's row is replaced by one with a new id), and,
while it is queued, its waiting reason and place in the queue. One exception, documented in the
README: a running job's duration_seconds counts up with the clock, and does not change the ETag;
a 304 leaves the client with the figure of its last 200 (started_at gives it exactly).

On SQLite a version, once read, is kept until the file changes (KnownVersions): a poller's repeat
then costs the API no query and no hop to the thread pool; and after a change, the requests that
ask for one job while its version is being read wait for that read instead of each making its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import ColumnElement, bindparam, func, make_url, select, type_coerce
from sqlalchemy.types import NullType
from sqlmodel import Session, col

from app import queue
from app.deps import MAX_ID_CHARS, resolve_job_id
from app.models import Checkpoint, EpochMetric, Job, JobStatus
from app.security import Principal

logger = logging.getLogger(__name__)

# Bodies of this many (job, version, route) keys stay serialised: pollers of a few hundred jobs;
# and at most this many bytes of them (a job of 10 000 epochs is ~2.4 MB of JSON).
CACHED_BODIES = 256
CACHED_BYTES = 64 * 1024 * 1024
# Versions kept between two changes of the database file: at most this many (job, caller) pairs.
KNOWN_VERSIONS = 4096
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "If-None-Match matched the ETag: the job and its rows are as they were."}
}

_JOBS = Job.__table__  # type: ignore[attr-defined]


def _row_aggregate(model: type[EpochMetric] | type[Checkpoint], aggregate: ColumnElement[Any]) -> Any:
    return select(aggregate).where(col(model.job_id) == _JOBS.c.id).scalar_subquery()


# One statement: the job's row by its primary key, and beside it the count and largest id of its
# metric rows and checkpoints, each an index range on the (job_id, epoch) unique keys. The row's
# values stay as the driver gives them (no JSON decoding, no datetime or enum conversion): they
# are only compared, and converting them cost more than the query.
_VERSION = select(
    *(type_coerce(column, NullType()).label(column.name) for column in _JOBS.columns),
    _row_aggregate(EpochMetric, func.count()),
    _row_aggregate(EpochMetric, func.max(EpochMetric.id)),
    _row_aggregate(Checkpoint, func.count()),
    _row_aggregate(Checkpoint, func.max(Checkpoint.id)),
).where(_JOBS.c.id == bindparam("job_id"))


@dataclass(frozen=True)
class Current:
    """A job as its ETag sees it: its full id, its version, and whether the version fixes every byte
    of its body (not while a running job's duration_seconds counts up with the clock)."""

    job_id: str
    version: str
    fixed: bool
    # Whether only a write can change the version; not a queued job's: its waiting reason
    # changes when a worker's heartbeat runs out, with no write.
    lasting: bool


def current(session: Session, job_id: str, principal: Principal) -> Current:
    """The job that `job_id` names (404 or 409 as app.deps.resolve_job_id says) at its current
    version. A full id, as pollers send, costs one statement on the session's connection, with no
    ORM object; a queued job's place in the queue and waiting reason are read too."""
    owner = None if principal.sees_all else principal.owner
    connection = session.connection()
    # Only a full id can be looked up as given (PostgreSQL refuses a NUL in text, say).
    full = len(job_id) == MAX_ID_CHARS and "\x00" not in job_id
    row = connection.execute(_VERSION, {"job_id": job_id}).first() if full else None
    if row is None or (owner is not None and row.owner != owner):
        row = connection.execute(_VERSION, {"job_id": resolve_job_id(session, job_id, owner=owner)}).one()
    parts: tuple[Any, ...] = tuple(row)
    if row.status == JobStatus.queued:
        job = session.get(Job, row.id)
        assert job is not None  # only ended jobs are deleted
        parts += (queue.waiting_reason(session, job=job), queue.queue_place(session, job=job))
    version = hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
    return Current(
        job_id=row.id,
        version=version,
        fixed=row.started_at is None or row.finished_at is not None,
        lasting=row.status != JobStatus.queued,
    )


class KnownVersions:
    """The versions read since the SQLite file last changed, by (job id as asked, owner scope).

    SQLite's `PRAGMA data_version`, asked on a connection of the event loop's own (a few
    microseconds, no lock waited for), changes whenever any other connection commits: this
    process's pool or another process's, a worker's. A version read after a stamp was taken holds
    while the stamp stays the same. Nothing is kept for PostgreSQL, which has no such counter.
    Used from the event loop only."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        sqlite = url.get_backend_name() == "sqlite" and url.database not in {None, "", ":memory:"}
        self._path = url.database if sqlite else None
        self._connection: sqlite3.Connection | None = None
        self._stamp: int | None = None
        self._known: dict[tuple[str, str | None], Current] = {}
        self._reading: dict[tuple[str, str | None], tuple[int, asyncio.Future[Current]]] = {}

    async def version(self, key: tuple[str, str | None], read: Callable[[], Current]) -> Current:
        """`key`'s version: from memory while the file has not changed since it was read, else
        `read` in the thread pool. After a change, every poller's next request would otherwise make
        its own read, a thread-pool hop each, at once: those that come while a read of the same
        key at the same stamp runs wait for it. A read shared that way holds for them (no write came
        between its stamp and theirs), except a queued job's: its waiting reason changes with no
        write, so a request that did not start the read reads again."""
        stamp = self._current_stamp()
        found = self._recall(key, stamp)
        if found is not None:
            return found
        if stamp is None:
            return await run_in_threadpool(read)
        reading = self._reading.get(key)
        joined = reading is not None and reading[0] == stamp
        if reading is None or not joined:
            started = (stamp, asyncio.ensure_future(run_in_threadpool(read)))
            self._reading[key] = reading = started
            started[1].add_done_callback(lambda _: self._done_reading(key, started))
        # Shielded: a request that goes away leaves the read to those still waiting for it.
        found = await asyncio.shield(reading[1])
        if joined and not found.lasting:
            found = await run_in_threadpool(read)
        self._remember(key, found, stamp)
        return found

    def _done_reading(
        self, key: tuple[str, str | None], reading: tuple[int, asyncio.Future[Current]]
    ) -> None:
        if self._reading.get(key) is reading:
            del self._reading[key]
        if not reading[1].cancelled():
            reading[1].exception()  # retrieved: when every waiter went away, no "never retrieved" log

    def _current_stamp(self) -> int | None:
        """The file's change counter now; None without one (PostgreSQL, or SQLite was busy)."""
        if self._path is None:
            return None
        try:
            if self._connection is None:
                # timeout 0: a rare busy moment skips the memo instead of stalling the event loop.
                self._connection = sqlite3.connect(self._path, timeout=0, isolation_level=None)
            stamp: int = self._connection.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            logger.debug("no data_version from %s: %s", self._path, exc)
            return None
        if stamp != self._stamp:
            self._stamp = stamp
            self._known.clear()
        return stamp

    def _recall(self, key: tuple[str, str | None], stamp: int | None) -> Current | None:
        return self._known.get(key) if stamp is not None and stamp == self._stamp else None

    def _remember(self, key: tuple[str, str | None], found: Current, stamp: int | None) -> None:
        """Keep `found`, read after `stamp` was taken, unless the file changed since."""
        if stamp is None or stamp != self._stamp or not found.lasting:
            return
        if len(self._known) >= KNOWN_VERSIONS:
            self._known.clear()
        self._known[key] = found

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def etag_header(version: str) -> str:
    # Weak: a running job's body differs in its duration_seconds under one version.
    return f'W/"{version}"'


class BodyCache:
    """Serialised bodies by (route, job id, version, query), least recently used dropped first.
    Shared by the event loop and the request threads, hence the lock; an entry is never stale, as its key holds the
    version it was built at."""

    def __init__(self, size: int = CACHED_BODIES, max_bytes: int = CACHED_BYTES) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._bodies: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
            return body

    def put(self, key: tuple[Any, ...], body: bytes) -> None:
        with self._lock:
            if key not in self._bodies and len(body) <= self._max_bytes:
                self._bodies[key] = body
                self._bytes += len(body)
            while len(self._bodies) > self._size or self._bytes > self._max_bytes:
                self._bytes -= len(self._bodies.popitem(last=False)[1])
