"""stop_reason: every way a job ends says why, once it has ended (a retry has none yet)."""

from __future__ import annotations

from sqlalchemy import Engine

from app import queue
from app.contract import FailureReason, RunResults, StopReason
from app.db import read_session
from app.models import Job
from app.schemas import JobPublic
from tests.factories import ONE_CPU, submit_job

LEASE_S = 60.0


def claim(engine: Engine, lease_seconds: float = LEASE_S) -> queue.Lease:
    lease = queue.claim(engine, worker_id="w1", lease_seconds=lease_seconds, capabilities=ONE_CPU)
    assert lease is not None
    return lease


def stop_reason(engine: Engine, job_id: str) -> StopReason | None:
    with read_session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        shown = JobPublic.from_rows(job, [], [], disk_bytes=0).stop_reason
        assert shown == job.stop_reason
        return shown


def fail(engine: Engine, lease: queue.Lease, reason: FailureReason) -> None:
    assert queue.fail(engine, lease=lease, reason=reason, message="m", runtime_seconds=1.0)


def test_a_run_that_ended_by_itself_keeps_the_reason_and_best_epoch_it_reported(engine: Engine) -> None:
    job = submit_job(engine)
    results = RunResults(stop_reason=StopReason.early_stopping, best_epoch=3)
    assert queue.succeed(engine, lease=claim(engine), runtime_seconds=1.0, results=results)
    assert stop_reason(engine, job.id) == StopReason.early_stopping
    with read_session(engine) as session:
        stored = session.get(Job, job.id)
        assert stored is not None and JobPublic.from_rows(stored, [], [], disk_bytes=0).best_epoch == 3


def test_failures_map_to_nan_loss_time_limit_or_failed_once_the_job_ends(engine: Engine) -> None:
    for reason, expected in [
        (FailureReason.nan_loss, StopReason.nan_loss),
        (FailureReason.timeout, StopReason.time_limit),
        (FailureReason.data_error, StopReason.failed),
    ]:
        job = submit_job(engine)
        fail(engine, claim(engine), reason)
        assert stop_reason(engine, job.id) == expected


def test_a_retried_failure_has_no_stop_reason_until_the_last_attempt(engine: Engine) -> None:
    job = submit_job(engine, max_attempts=2)
    fail(engine, claim(engine), FailureReason.worker_lost)
    assert stop_reason(engine, job.id) is None
    fail(engine, claim(engine), FailureReason.worker_lost)
    assert stop_reason(engine, job.id) == StopReason.failed


def test_a_lost_worker_on_the_last_attempt_and_a_cancel_say_so(engine: Engine) -> None:
    lost = submit_job(engine, max_attempts=1)
    claim(engine, lease_seconds=-1.0)
    assert queue.requeue_expired(engine) == 1
    assert stop_reason(engine, lost.id) == StopReason.failed

    cancelled = submit_job(engine)
    claim(engine)
    assert queue.cancel(engine, job_id=cancelled.id) is not None
    assert stop_reason(engine, cancelled.id) == StopReason.cancelled
