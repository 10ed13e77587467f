"""Writers that race for the same job, each with its own connection, as on PostgreSQL where
several machines share the queue (READ COMMITTED). SQLite serialises writers, so the races
that need two transactions open at once run on PostgreSQL only."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, text
from sqlmodel import col, select

from app import queue
from app.contract import FailureReason
from app.db import make_engine, read_session
from app.models import EventKind, Job, JobEvent, JobStatus
from tests.factories import COMPLETED, ONE_CPU, epoch_metrics, submit_job
from tests.support.polling import wait_for

LEASE_S = 60.0
REAPERS = 6
REAPED_JOBS = 20
REAP_ROUNDS = 10
RACES = 20

postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def status_events(engine: Engine, job_id: str) -> list[JobEvent]:
    with read_session(engine) as session:
        rows = session.exec(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.kind == EventKind.status)
            .order_by(col(JobEvent.id))
        )
        return list(rows)


def _reap_rounds(
    database_url: str, rounds: int, barrier: multiprocessing.Barrier, taken_back: multiprocessing.Queue
) -> None:  # type: ignore[type-arg,valid-type]
    engine = make_engine(database_url)
    try:
        for _ in range(rounds):
            barrier.wait(timeout=60)  # every lease has run out: all reapers start at once
            taken_back.put(queue.requeue_expired(engine))
            barrier.wait(timeout=60)
    finally:
        engine.dispose()


def test_concurrent_reapers_take_back_each_expired_lease_exactly_once(
    engine: Engine, database_url: str
) -> None:
    jobs = [submit_job(engine, max_attempts=REAP_ROUNDS + 1).id for _ in range(REAPED_JOBS)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(REAPERS + 1)
    taken_back: multiprocessing.Queue[int] = ctx.Queue()
    reapers = [
        ctx.Process(target=_reap_rounds, args=(database_url, REAP_ROUNDS, barrier, taken_back))
        for _ in range(REAPERS)
    ]
    for process in reapers:
        process.start()
    for round_ in range(REAP_ROUNDS):
        for _ in jobs:  # a negative lease has run out as soon as it is taken
            assert queue.claim(engine, worker_id="lost", lease_seconds=-1.0, capabilities=ONE_CPU) is not None
        barrier.wait(timeout=60)
        barrier.wait(timeout=60)
        counts = [taken_back.get(timeout=60) for _ in reapers]
        assert sum(counts) == len(jobs), f"round {round_}: the reapers took back {counts}"
    for process in reapers:
        process.join(timeout=60)
        assert process.exitcode == 0
    with read_session(engine) as session:
        failures = dict(session.exec(select(Job.id, Job.failures)).all())
    lost = Counter(
        job_id
        for job_id in jobs
        for row in status_events(engine, job_id)
        if row.data["error"] and row.data["error"]["reason"] == "worker_lost"
    )
    assert failures == dict.fromkeys(jobs, REAP_ROUNDS)
    assert lost == dict.fromkeys(jobs, REAP_ROUNDS)


def _cancelled(engine: Engine, job_id: str) -> bool:
    try:
        return queue.cancel(engine, job_id=job_id) is not None
    except queue.JobIsFinal:
        return False


def waiting_for_locks(engine: Engine) -> int:
    """Backends of this database waiting for a lock."""
    with engine.connect() as connection:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        return int(connection.execute(text(query)).scalar_one())


def race_with_cancel(engine: Engine, job_id: str, write: Callable[[], bool]) -> tuple[bool, bool]:
    """Run a worker's write and a cancel of the job at once; (whether each took effect).
    A third transaction holds the job's row until both are under way and waiting for it,
    so that the two transactions overlap every time, whatever the machine's speed."""
    # The blocker is closed (releasing the row) before the pool waits for its threads.
    with ThreadPoolExecutor(max_workers=2) as pool, engine.connect() as blocker:
        blocker.execute(select(Job.id).where(Job.id == job_id).with_for_update())
        written = pool.submit(write)
        cancelled = pool.submit(_cancelled, engine, job_id)
        wait_for(
            lambda: waiting_for_locks(engine) >= 2, timeout_s=30, what="both writers to wait for the row"
        )
        blocker.rollback()
        return written.result(timeout=30), cancelled.result(timeout=30)


@postgres_only
def test_a_cancel_racing_a_succeed_ends_the_job_once(engine: Engine) -> None:
    for _ in range(RACES):
        job = submit_job(engine)
        lease = queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU)
        assert lease is not None
        succeeded, cancelled = race_with_cancel(
            engine,
            job.id,
            lambda lease=lease: queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=COMPLETED),
        )
        assert succeeded != cancelled
        final = [
            row.data["status"]
            for row in status_events(engine, job.id)
            if JobStatus(row.data["status"]).is_final
        ]
        assert final == ["succeeded" if succeeded else "cancelled"]
        with read_session(engine) as session:
            stored = session.get(Job, job.id)
            assert stored is not None
            assert stored.status == (JobStatus.succeeded if succeeded else JobStatus.cancelled)


@postgres_only
def test_a_cancel_racing_a_failure_ends_the_job_once(engine: Engine) -> None:
    for _ in range(RACES):
        job = submit_job(engine)
        lease = queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU)
        assert lease is not None
        failed, cancelled = race_with_cancel(
            engine,
            job.id,
            lambda lease=lease: queue.fail(
                engine, lease=lease, reason=FailureReason.training_error, message="boom", runtime_seconds=1.0
            ),
        )
        assert failed != cancelled
        final = [
            row.data["status"]
            for row in status_events(engine, job.id)
            if JobStatus(row.data["status"]).is_final
        ]
        assert final == ["failed" if failed else "cancelled"]


@postgres_only
def test_an_epoch_racing_a_cancel_is_recorded_before_it_or_not_at_all(engine: Engine) -> None:
    for _ in range(RACES):
        job = submit_job(engine)
        lease = queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU)
        assert lease is not None
        recorded, cancelled = race_with_cancel(
            engine,
            job.id,
            lambda lease=lease: (
                queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1), progress=0.5) is not None
            ),
        )
        assert cancelled
        with read_session(engine) as session:
            kinds = [
                row.data.get("status", row.kind.value)
                for row in session.exec(
                    select(JobEvent).where(JobEvent.job_id == job.id).order_by(col(JobEvent.id))
                )
            ]
        assert kinds[-1] == "cancelled"
        assert kinds.count("epoch") == int(recorded)
