from __future__ import annotations

import multiprocessing

from sqlalchemy import Engine, event
from sqlmodel import col, select

from app import queue
from app.contract import FailureReason
from app.db import make_engine, read_session
from app.models import Checkpoint, EpochMetric, Job, JobStatus
from tests.factories import COMPLETED, ONE_CPU, epoch_metrics, list_checkpoint, submit_job
from tests.support.query_plans import query_plan, recorded_statements

LEASE_S = 60.0


def claim(engine: Engine, worker_id: str = "w1") -> queue.Lease | None:
    return queue.claim(engine, worker_id=worker_id, lease_seconds=LEASE_S, capabilities=ONE_CPU)


def reload(engine: Engine, job_id: str) -> Job:
    with read_session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_claim_takes_the_oldest_queued_job_and_counts_the_attempt(engine: Engine) -> None:
    first = submit_job(engine, "first")
    submit_job(engine, "second")
    lease = claim(engine)
    assert lease is not None
    assert (lease.job_id, lease.attempt, lease.resume_file) == (first.id, 1, None)
    job = reload(engine, first.id)
    assert job.status == JobStatus.running
    assert job.attempts == 1
    assert job.worker_id == "w1"
    assert job.started_at is not None
    assert job.lease_expires_at is not None


def test_claim_on_an_empty_queue_returns_none(engine: Engine) -> None:
    assert claim(engine) is None


def test_running_jobs_are_not_claimed_twice(engine: Engine) -> None:
    submit_job(engine)
    assert claim(engine) is not None
    assert claim(engine, "w2") is None


def test_writes_with_a_stale_lease_are_refused(engine: Engine) -> None:
    job = submit_job(engine)
    lease = claim(engine)
    assert lease is not None
    assert queue.fail(
        engine, lease=lease, reason=FailureReason.training_error, message="boom", runtime_seconds=1.0
    )
    assert queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1), progress=0.1) is None
    assert not queue.heartbeat(engine, lease=lease, lease_seconds=LEASE_S, runtime_seconds=1.0)
    assert not queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=COMPLETED)
    assert (
        list_checkpoint(
            engine,
            lease=lease,
            checkpoint=queue.CheckpointFile(
                epoch=1, file_name="epoch-0001.pt", size_bytes=1, sha256="0" * 64, is_best=True
            ),
        )
        is None
    )
    stored = reload(engine, job.id)
    assert stored.status == JobStatus.failed
    assert (stored.error_reason, stored.error_message) == ("training_error", "boom")


def test_epoch_rows_are_written_one_per_epoch_with_their_attempt(engine: Engine) -> None:
    job = submit_job(engine)
    lease = claim(engine)
    assert lease is not None
    assert queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1), progress=0.5) == []
    assert (
        queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1, val_loss=0.25), progress=0.5) == []
    )
    with read_session(engine) as session:
        rows = session.exec(select(EpochMetric).where(EpochMetric.job_id == job.id)).all()
    assert [(r.epoch, r.attempt, r.val_loss) for r in rows] == [(1, 1, 0.25)]
    stored = reload(engine, job.id)
    assert (stored.current_epoch, stored.progress) == (1, 0.5)


def test_only_the_latest_and_the_best_checkpoint_stay_listed(engine: Engine) -> None:
    job = submit_job(engine)
    lease = claim(engine)
    assert lease is not None

    def record(epoch: int, is_best: bool) -> list[str] | None:
        return list_checkpoint(
            engine,
            lease=lease,
            checkpoint=queue.CheckpointFile(
                epoch=epoch,
                file_name=f"epoch-{epoch:04d}.pt",
                size_bytes=10,
                sha256=f"{epoch:064d}",
                is_best=is_best,
            ),
        )

    assert record(1, True) == []
    assert record(2, True) == ["epoch-0001.pt"]
    assert record(3, False) == []
    assert record(4, False) == ["epoch-0003.pt"]
    assert record(5, True) == ["epoch-0002.pt", "epoch-0004.pt"]
    with read_session(engine) as session:
        rows = session.exec(
            select(Checkpoint).where(Checkpoint.job_id == job.id).order_by(col(Checkpoint.epoch))
        )
        assert [(r.epoch, r.is_best) for r in rows] == [(5, True)]


def test_a_released_job_is_claimed_again_with_its_latest_checkpoint(engine: Engine) -> None:
    job = submit_job(engine)
    lease = claim(engine)
    assert lease is not None
    list_checkpoint(
        engine,
        lease=lease,
        checkpoint=queue.CheckpointFile(
            epoch=2, file_name="epoch-0002.pt", size_bytes=1, sha256="a" * 64, is_best=True
        ),
    )
    assert queue.release(engine, lease=lease, resume_file=None, runtime_seconds=1.0)
    assert reload(engine, job.id).status == JobStatus.queued
    again = claim(engine, "w2")
    assert again is not None
    assert (again.job_id, again.attempt, again.resume_file) == (job.id, 2, "epoch-0002.pt")


def _claim_all(database_url: str, worker_id: str, claimed: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    engine = make_engine(database_url)
    while (
        lease := queue.claim(engine, worker_id=worker_id, lease_seconds=LEASE_S, capabilities=ONE_CPU)
    ) is not None:
        queue.succeed(engine, lease=lease, runtime_seconds=0.0, results=COMPLETED)
        claimed.put(lease.job_id)
    engine.dispose()


def test_concurrent_claimers_take_every_job_exactly_once_without_lock_errors(
    engine: Engine, database_url: str
) -> None:
    submitted = {submit_job(engine).id for _ in range(60)}
    ctx = multiprocessing.get_context("spawn")
    claimed: multiprocessing.Queue[str] = ctx.Queue()
    workers = [ctx.Process(target=_claim_all, args=(database_url, f"w{i}", claimed)) for i in range(4)]
    for process in workers:
        process.start()
    ids = [claimed.get(timeout=60) for _ in range(len(submitted))]
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert sorted(ids) == sorted(submitted)
    with read_session(engine) as session:
        jobs = session.exec(select(Job)).all()
    assert all(job.status == JobStatus.succeeded and job.attempts == 1 for job in jobs)


def test_the_claim_finds_the_first_queued_job_through_the_status_queue_order_index(engine: Engine) -> None:
    for _ in range(3):
        submit_job(engine)
    with recorded_statements(engine) as statements:
        assert claim(engine) is not None
    (statement, parameters), *_ = [(s, p) for s, p in statements if s.startswith("UPDATE jobs")]
    text = query_plan(engine, statement, parameters)
    assert "ix_jobs_status_queue_order" in text, text
    assert "Sort" not in text and "TEMP B-TREE" not in text, text


def test_idle_polls_read_without_taking_the_write_lock(engine: Engine) -> None:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert not queue.has_queued(engine, capabilities=ONE_CPU)
        assert queue.requeue_expired(engine) == 0
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements and not any(s.startswith("BEGIN IMMEDIATE") for s in statements)
    submit_job(engine)
    assert queue.has_queued(engine, capabilities=ONE_CPU)
    assert claim(engine) is not None
    assert not queue.has_queued(engine, capabilities=ONE_CPU)


def test_a_jobs_results_are_sql_null_until_known_so_queries_can_test_for_them(engine: Engine) -> None:
    job = submit_job(engine)
    lease = claim(engine)
    assert lease is not None
    results = ("dataset_info", "warm_start", "val_metrics", "test_metrics", "exports")
    with read_session(engine) as session:
        missing = session.exec(
            select(*(col(getattr(Job, name)).is_(None) for name in results)).where(Job.id == job.id)
        ).one()
    assert all(missing), dict(zip(results, missing, strict=True))
