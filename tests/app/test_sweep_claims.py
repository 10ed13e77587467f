"""A sweep in the queue: its jobs queued all or nothing, and max_parallel kept by the claim itself,
also when claimers race on PostgreSQL (READ COMMITTED, each with its own connection)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import select

from app import queue
from app.db import read_session
from app.models import Job, JobCreate, JobEvent, JobStatus, Sweep
from app.queue import outbox, workers
from tests.factories import COMPLETED, ONE_CPU, submit_job
from tests.support.polling import wait_for

LEASE_S = 60.0
CLAIMERS = 8
RACES = 10

postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def queue_sweep(engine: Engine, jobs: int, max_parallel: int | None) -> Sweep:
    sweep = Sweep(name="s", method="grid", base={}, space={}, max_parallel=max_parallel)
    requests = [JobCreate(name=f"s #{n}") for n in range(1, jobs + 1)]
    return queue.create_sweep(engine, sweep=sweep, jobs=requests)


def claim(engine: Engine) -> queue.Lease | None:
    return queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU)


def running(engine: Engine, sweep_id: str) -> int:
    with read_session(engine) as session:
        return session.exec(
            select(func.count())
            .select_from(Job)
            .where(Job.sweep_id == sweep_id, Job.status == JobStatus.running)
        ).one()


def sweep_of(engine: Engine, lease: queue.Lease) -> str | None:
    with read_session(engine) as session:
        job = session.get(Job, lease.job_id)
        assert job is not None
        return job.sweep_id


def test_claims_step_over_a_sweep_that_runs_max_parallel_jobs(engine: Engine) -> None:
    sweep = queue_sweep(engine, jobs=5, max_parallel=2)
    plain = submit_job(engine)  # queued after the sweep's jobs
    first, second = claim(engine), claim(engine)
    assert first is not None and second is not None
    assert {sweep_of(engine, first), sweep_of(engine, second)} == {sweep.id}
    third = claim(engine)
    assert third is not None and third.job_id == plain.id  # the sweep's others wait
    assert claim(engine) is None
    assert not queue.has_queued(engine, capabilities=ONE_CPU)
    assert queue.succeed(engine, lease=first, runtime_seconds=1.0, results=COMPLETED)
    assert queue.has_queued(engine, capabilities=ONE_CPU)
    fourth = claim(engine)
    assert fourth is not None and sweep_of(engine, fourth) == sweep.id
    assert claim(engine) is None
    assert running(engine, sweep.id) == 2


def test_a_job_held_back_by_its_sweeps_max_parallel_says_why(engine: Engine) -> None:
    card = workers.WorkerCard(id="w", host="h", pid=1, capabilities=ONE_CPU, memory_bytes=2**34, version="t")
    workers.register(engine, card=card, lease_seconds=LEASE_S)
    sweep = queue_sweep(engine, jobs=2, max_parallel=1)

    def reasons() -> list[str | None]:
        with read_session(engine) as session:
            jobs = session.exec(select(Job).where(Job.sweep_id == sweep.id).order_by(Job.created_at)).all()
            return [queue.waiting_reason(session, job=job) for job in jobs]

    assert reasons() == [None, None]  # a worker could take either: each waits its turn
    lease = claim(engine)
    assert lease is not None
    assert reasons() == [None, f"its sweep {sweep.id} runs 1 job already, its max_parallel (1)"]
    assert queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=COMPLETED)
    assert reasons() == [None, None]


def test_a_sweep_without_max_parallel_runs_all_its_jobs_at_once(engine: Engine) -> None:
    sweep = queue_sweep(engine, jobs=4, max_parallel=None)
    while claim(engine) is not None:
        pass
    assert running(engine, sweep.id) == 4


def test_a_failure_while_queueing_a_sweep_leaves_no_sweep_and_no_job(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = 0
    status_changed = outbox.status_changed

    def fails_on_the_third(*args: Any, **kwargs: Any) -> None:
        nonlocal written
        written += 1
        if written == 3:
            raise RuntimeError("the API process died here")
        status_changed(*args, **kwargs)

    monkeypatch.setattr(outbox, "status_changed", fails_on_the_third)
    with pytest.raises(RuntimeError):
        queue_sweep(engine, jobs=5, max_parallel=None)
    with read_session(engine) as session:
        assert session.exec(select(func.count()).select_from(Job)).one() == 0
        assert session.exec(select(func.count()).select_from(Sweep)).one() == 0


def waiting_for_locks(engine: Engine) -> int:
    with engine.connect() as connection:
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        return int(connection.exec_driver_sql(query).scalar_one())


@postgres_only
def test_two_claimers_that_both_count_a_free_slot_start_one_job(engine: Engine) -> None:
    """Both claims count 0 running jobs of a max_parallel=1 sweep before either commits: a third
    transaction holds the sweep's row until both took a job and wait for it, whatever the
    machine's speed. One keeps its job; the other rolls back, and its retry finds the sweep full."""
    for _ in range(RACES):
        sweep = queue_sweep(engine, jobs=3, max_parallel=1)
        with ThreadPoolExecutor(max_workers=2) as pool, engine.connect() as blocker:
            blocker.execute(select(Sweep.id).where(Sweep.id == sweep.id).with_for_update())
            claims = [pool.submit(claim, engine) for _ in range(2)]
            wait_for(lambda: waiting_for_locks(engine) >= 2, timeout_s=30, what="both claims to wait")
            blocker.rollback()
            leases = [c.result(timeout=30) for c in claims]
        assert sum(lease is not None for lease in leases) == 1
        assert running(engine, sweep.id) == 1
        for lease in leases:
            if lease is not None:
                queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=COMPLETED)
        queue.cancel_sweep(engine, sweep_id=sweep.id)


@postgres_only
def test_many_concurrent_claimers_never_run_more_than_max_parallel_jobs_of_a_sweep(engine: Engine) -> None:
    sweep = queue_sweep(engine, jobs=20, max_parallel=3)
    start = threading.Barrier(CLAIMERS)

    def claim_until_none() -> int:
        start.wait(timeout=30)
        taken = 0
        while claim(engine) is not None:
            taken += 1
        return taken

    with ThreadPoolExecutor(max_workers=CLAIMERS) as pool:
        taken = [f.result(timeout=60) for f in [pool.submit(claim_until_none) for _ in range(CLAIMERS)]]
    assert sum(taken) == 3
    assert running(engine, sweep.id) == 3


@postgres_only
def test_cancelling_a_sweep_while_a_worker_ends_one_of_its_jobs_ends_that_job_once(engine: Engine) -> None:
    for _ in range(RACES):
        sweep = queue_sweep(engine, jobs=2, max_parallel=None)
        lease = claim(engine)
        assert lease is not None
        # The blocker holds the job's row until both writers wait for it, whatever the machine's speed.
        with ThreadPoolExecutor(max_workers=2) as pool, engine.connect() as blocker:
            blocker.execute(select(Job.id).where(Job.id == lease.job_id).with_for_update())
            succeeded = pool.submit(
                queue.succeed, engine, lease=lease, runtime_seconds=1.0, results=COMPLETED
            )
            cancelled = pool.submit(queue.cancel_sweep, engine, sweep_id=sweep.id)
            wait_for(lambda: waiting_for_locks(engine) >= 2, timeout_s=30, what="both writers to wait")
            blocker.rollback()
            ended, cancelled_ids = succeeded.result(timeout=30), cancelled.result(timeout=30)
        assert ended != (lease.job_id in cancelled_ids)
        with read_session(engine) as session:
            finals = [
                row.data["status"]
                for row in session.exec(select(JobEvent).where(JobEvent.job_id == lease.job_id))
                if JobStatus(row.data["status"]).is_final
            ]
            stored = session.get(Job, lease.job_id)
        assert stored is not None
        assert finals == [stored.status.value] == (["succeeded"] if ended else ["cancelled"])
        assert len(cancelled_ids) == (1 if ended else 2)
