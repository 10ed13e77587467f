"""Event ids become visible in id order, so that a reader's cursor never passes an event that
commits later. Only PostgreSQL can commit a smaller id after a larger one (SQLite has one writer)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from sqlalchemy import Engine, func, text
from sqlmodel import Session, select

from app import queue
from app.models import Job, JobEvent, JobStatus
from app.queue import outbox
from tests.factories import COMPLETED, ONE_CPU, submit_job
from tests.support.polling import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def waiting_for_the_event_lock(engine: Engine) -> bool:
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
    )
    with engine.connect() as connection:
        return bool(connection.execute(text(query)).scalar_one())


def test_an_event_that_commits_after_a_newer_one_is_not_skipped_by_a_reader(engine: Engine) -> None:
    job = submit_job(engine)
    cursor = outbox.last_event_id(engine)
    first = Session(engine)
    try:
        first.begin()
        outbox.status_changed(first, job_id=job.id, status=JobStatus.queued, attempt=0)
        first.flush()
        first_id = first.exec(select(func.max(JobEvent.id))).one()  # drawn, not committed
        with ThreadPoolExecutor(max_workers=1) as pool:
            second = pool.submit(submit_job, engine)  # another writer, whose event gets a larger id
            wait_for(
                lambda: second.done() or waiting_for_the_event_lock(engine),
                timeout_s=30,
                what="the second writer to commit or to wait for the first",
            )
            seen = outbox.events_after(engine, after_id=cursor, limit=100)  # what a stream reads now
            assert [row.id for row in seen if row.id is not None and row.id > first_id] == []
            first.commit()
            second_job = second.result(timeout=30)
    finally:
        first.close()
    cursor = seen[-1].id if seen else cursor  # as EventHub moves its cursor
    later = outbox.events_after(engine, after_id=cursor, limit=100)
    assert [row.job_id for row in seen + later] == [job.id, second_job.id]
    resumed = outbox.replay(engine, job_id=job.id, after_id=cursor)  # a client resuming after that cursor
    assert [row.id for row in resumed.events] == [first_id]


def test_a_status_event_is_stamped_by_the_databases_clock_like_the_job(engine: Engine) -> None:
    job = submit_job(engine)
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    assert queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=COMPLETED)
    with Session(engine) as session:
        stored = session.get(Job, job.id)
        assert stored is not None and stored.started_at is not None and stored.finished_at is not None
        stamps = {
            row.data["status"]: datetime.fromisoformat(row.data["at"])
            for row in session.exec(select(JobEvent).where(JobEvent.job_id == job.id))
        }
    # now() is the transaction's start: the same moment the row got.
    assert stamps["running"] == stored.started_at
    assert stamps["succeeded"] == stored.finished_at
