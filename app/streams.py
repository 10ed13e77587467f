"""Live job events for any number of open streams, at a fixed cost to the database.

One EventHub per API process polls for new events of all jobs (one indexed
query every EVENT_POLL_S) and the progress of the jobs being watched (one query
every PROGRESS_POLL_S), only while a stream is open, and hands them to the
streams in memory. Logs are followed on disk by each stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.logs import LogFollower
from app.models import EventKind, JobEvent, JobStatus
from app.queue import outbox

logger = logging.getLogger(__name__)

EVENT_POLL_S = 0.5
PROGRESS_POLL_S = 1.0
EVENTS_PER_QUERY = 1000
JOBS_PER_QUERY = 500
LOG_LINES_PER_EVENT = 500


@dataclass(frozen=True)
class Progress:
    epoch: int
    progress: float


@dataclass(eq=False)
class Subscription:
    job_id: str
    inbox: asyncio.Queue[JobEvent | Progress] = field(default_factory=asyncio.Queue)


class EventHub:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._subscriptions: dict[str, set[Subscription]] = defaultdict(set)
        self._cursor: int | None = None  # the last event id handed out; None while no stream is open

    async def run(self) -> None:
        next_progress = 0.0
        while True:
            try:
                if not self._subscriptions:
                    self._cursor = None
                elif self._cursor is not None:
                    await self._poll_events()
                    if time.monotonic() >= next_progress:
                        next_progress = time.monotonic() + PROGRESS_POLL_S
                        await self._poll_progress()
            except SQLAlchemyError:
                logger.exception("could not read job events; trying again")
            await asyncio.sleep(EVENT_POLL_S)

    @asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[Subscription]:
        """Events of the job committed after this call returns are delivered; replay the rest."""
        if self._cursor is None:
            latest = await asyncio.to_thread(outbox.last_event_id, self._engine)
            if self._cursor is None:
                self._cursor = latest
        subscription = Subscription(job_id)
        self._subscriptions[job_id].add(subscription)
        try:
            yield subscription
        finally:
            watchers = self._subscriptions[job_id]
            watchers.discard(subscription)
            if not watchers:
                del self._subscriptions[job_id]

    async def _poll_events(self) -> None:
        while self._cursor is not None:
            rows = await asyncio.to_thread(
                outbox.events_after, self._engine, after_id=self._cursor, limit=EVENTS_PER_QUERY
            )
            for row in rows:
                for subscription in self._subscriptions.get(row.job_id, ()):
                    subscription.inbox.put_nowait(row)
            if rows:
                self._cursor = rows[-1].id
            if len(rows) < EVENTS_PER_QUERY:
                return

    async def _poll_progress(self) -> None:
        job_ids = list(self._subscriptions)
        for start in range(0, len(job_ids), JOBS_PER_QUERY):
            rows = await asyncio.to_thread(
                outbox.progress_of, self._engine, job_ids=job_ids[start : start + JOBS_PER_QUERY]
            )
            for job_id, status, epoch, progress in rows:
                if status == JobStatus.running:
                    for subscription in self._subscriptions.get(job_id, ()):
                        subscription.inbox.put_nowait(Progress(epoch, progress))


# A larger number can be neither an SQL parameter (SQLite's INTEGER) nor a file offset.
MAX_CURSOR_PART = 2**63 - 1
_CURSOR_TEXT = re.compile(r"([0-9]{1,19})\.([0-9]{1,19})")


class Cursor:
    """Where a stream is: the last event id sent and the bytes of log sent. Its text is the SSE id."""

    def __init__(self, event_id: int = 0, log_offset: int | None = None) -> None:
        self.event_id = event_id
        self.log_offset = log_offset

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """Raises ValueError unless `text` could be an id this stream sent."""
        match = _CURSOR_TEXT.fullmatch(text)
        if match is None:
            raise ValueError(text)
        event_id, log_offset = int(match[1]), int(match[2])
        if event_id > MAX_CURSOR_PART or log_offset > MAX_CURSOR_PART:
            raise ValueError(text)
        return cls(event_id, log_offset)

    def __str__(self) -> str:
        return f"{self.event_id}.{self.log_offset or 0}"


def _event(name: str, data: Any, cursor: Cursor | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"event": name, "data": json.dumps(data)}
    if cursor is not None:
        message["id"] = str(cursor)
    return message


async def job_stream(
    hub: EventHub, engine: Engine, *, job_id: str, job_dir: Path, cursor: Cursor
) -> AsyncIterator[dict[str, Any]]:
    """The SSE messages of one job: replay after `cursor`, then live, until the job ends."""
    async with hub.subscribe(job_id) as subscription:
        replay = await asyncio.to_thread(outbox.replay, engine, job_id=job_id, after_id=cursor.event_id)
        logs = LogFollower(job_dir, cursor.log_offset, max_lines=LOG_LINES_PER_EVENT)
        cursor.log_offset = logs.offset
        for row in replay.events:
            yield _sent(row, cursor)
        final = replay.status if replay.status.is_final else None
        shown = Progress(replay.epoch, replay.progress)
        if final is None:
            yield _event("progress", {"epoch": shown.epoch, "progress": shown.progress})
        while final is None:
            try:
                item = await asyncio.wait_for(subscription.inbox.get(), timeout=EVENT_POLL_S)
            except TimeoutError:
                item = None
            if isinstance(item, Progress) and item != shown:
                shown = item
                yield _event("progress", {"epoch": item.epoch, "progress": item.progress})
            for message in _log_events(logs, cursor):
                yield message
            if isinstance(item, JobEvent) and item.id is not None and item.id > cursor.event_id:
                yield _sent(item, cursor)
                if item.kind == EventKind.status and JobStatus(item.data["status"]).is_final:
                    final = JobStatus(item.data["status"])
        for message in _log_events(logs, cursor, partial=True):
            yield message
        yield _event("end", {"status": final.value})


def _sent(row: JobEvent, cursor: Cursor) -> dict[str, Any]:
    assert row.id is not None
    cursor.event_id = row.id
    return _event(row.kind.value, row.data, cursor)


def _log_events(logs: LogFollower, cursor: Cursor, *, partial: bool = False) -> list[dict[str, Any]]:
    messages = []
    for chunk in logs.read_new(partial=partial):
        cursor.log_offset = chunk.end_offset
        messages.append(_event("log", {"attempt": chunk.attempt, "lines": chunk.lines}, cursor))
    return messages
