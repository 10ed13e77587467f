"""What the queue does when things go wrong: lost leases, retries, cancels, repeated submits."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, update

from app import queue
from app.contract import FailureReason
from app.db import write_session
from app.hyperparameters import Hyperparameters
from app.models import Job, JobCreate, JobStatus, utcnow
from tests.app.test_queue import LEASE_S, claim, reload
from tests.factories import COMPLETED, list_checkpoint, submit_job


def expire_lease(engine: Engine, job_id: str) -> None:
    with write_session(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow()))


def test_an_expired_lease_queues_the_job_again_and_fences_out_the_old_worker(engine: Engine) -> None:
    job = submit_job(engine)
    lost = claim(engine)
    assert lost is not None
    expire_lease(engine, job.id)
    assert queue.requeue_expired(engine) == 1
    stored = reload(engine, job.id)
    assert (stored.status, stored.error_reason) == (JobStatus.queued, "worker_lost")
    again = claim(engine, "w2")
    assert again is not None
    assert again.attempt == 2
    assert not queue.heartbeat(engine, lease=lost, lease_seconds=LEASE_S, runtime_seconds=1.0)
    assert not queue.holds(engine, lease=lost)
    assert queue.holds(engine, lease=again)


def test_a_live_lease_is_not_taken_back(engine: Engine) -> None:
    submit_job(engine)
    assert claim(engine) is not None
    assert queue.requeue_expired(engine) == 0


def test_a_job_fails_with_worker_lost_once_max_attempts_are_used_up(engine: Engine) -> None:
    job = submit_job(engine, max_attempts=2)
    for _ in range(2):
        assert claim(engine) is not None
        expire_lease(engine, job.id)
        queue.requeue_expired(engine)
    stored = reload(engine, job.id)
    assert (stored.status, stored.error_reason, stored.attempts) == (JobStatus.failed, "worker_lost", 2)
    assert stored.finished_at is not None


def test_only_failures_of_the_machine_are_retryable() -> None:
    retryable = {r for r in FailureReason if r.retryable}
    assert retryable == {"out_of_memory", "disk_full", "worker_lost", "api_unreachable", "api_refused"}


@pytest.mark.parametrize("reason", [r for r in FailureReason if r.retryable])
def test_machine_failures_are_retried_until_max_attempts(engine: Engine, reason: FailureReason) -> None:
    job = submit_job(engine, max_attempts=2)
    first = claim(engine)
    assert first is not None
    assert queue.fail(engine, lease=first, reason=reason, message="the machine failed", runtime_seconds=1)
    assert reload(engine, job.id).status == JobStatus.queued
    second = claim(engine)
    assert second is not None
    queue.fail(engine, lease=second, reason=reason, message="the machine failed", runtime_seconds=2)
    stored = reload(engine, job.id)
    assert (stored.status, stored.error_reason, stored.runtime_seconds) == (JobStatus.failed, reason, 2)


@pytest.mark.parametrize("reason", [r for r in FailureReason if not r.retryable])
def test_job_failures_are_not_retried(engine: Engine, reason: FailureReason) -> None:
    job = submit_job(engine)
    lease = claim(engine)
    assert lease is not None
    queue.fail(engine, lease=lease, reason=reason, message="why", runtime_seconds=1)
    assert reload(engine, job.id).status == JobStatus.failed


def test_a_graceful_hand_back_is_not_a_failed_attempt(engine: Engine) -> None:
    job = submit_job(engine, max_attempts=1)
    for _ in range(3):
        lease = claim(engine)
        assert lease is not None
        queue.release(engine, lease=lease, resume_file="resume.pt", runtime_seconds=5)
    lease = claim(engine)
    assert lease is not None
    assert (lease.resume_file, lease.runtime_seconds, lease.attempt) == ("resume.pt", 5, 4)
    expire_lease(engine, job.id)
    queue.requeue_expired(engine)
    assert reload(engine, job.id).status == JobStatus.failed


def test_a_hand_back_before_the_first_batch_keeps_the_mid_epoch_checkpoint(engine: Engine) -> None:
    submit_job(engine)
    lease = claim(engine)
    assert lease is not None
    queue.release(engine, lease=lease, resume_file="resume.pt", runtime_seconds=1)
    lease = claim(engine)
    assert lease is not None
    queue.release(engine, lease=lease, resume_file=None, runtime_seconds=1)
    again = claim(engine)
    assert again is not None
    assert again.resume_file == "resume.pt"


def test_a_newer_epoch_checkpoint_supersedes_the_hand_back_file(engine: Engine) -> None:
    job = submit_job(engine)
    lease = claim(engine)
    assert lease is not None
    queue.release(engine, lease=lease, resume_file="resume.pt", runtime_seconds=1)
    lease = claim(engine)
    assert lease is not None
    unneeded = list_checkpoint(
        engine,
        lease=lease,
        checkpoint=queue.CheckpointFile(
            epoch=3, file_name="epoch-0003.pt", size_bytes=1, sha256="a" * 64, is_best=True
        ),
    )
    assert unneeded == ["resume.pt"]
    assert reload(engine, job.id).resume_file is None


def test_a_claim_names_every_file_the_job_lists_so_the_rest_can_be_swept(engine: Engine) -> None:
    submit_job(engine)
    lease = claim(engine)
    assert lease is not None
    for epoch, best in ((1, True), (2, False)):
        checkpoint = queue.CheckpointFile(
            epoch=epoch,
            file_name=f"attempt-1/epoch-000{epoch}.pt",
            size_bytes=1,
            sha256="a" * 64,
            is_best=best,
        )
        list_checkpoint(engine, lease=lease, checkpoint=checkpoint)
    queue.release(engine, lease=lease, resume_file="attempt-1/resume.pt", runtime_seconds=1)
    again = claim(engine)
    assert again is not None
    assert again.listed_files == {"attempt-1/epoch-0001.pt", "attempt-1/epoch-0002.pt", "attempt-1/resume.pt"}
    assert again.resume_file == "attempt-1/resume.pt"


def test_cancelling_a_queued_job_ends_it_at_once(engine: Engine) -> None:
    job = submit_job(engine)
    cancelled = queue.cancel(engine, job_id=job.id)
    assert cancelled is not None
    assert cancelled.status == JobStatus.cancelled
    assert claim(engine) is None


def test_cancelling_a_running_job_revokes_its_lease(engine: Engine) -> None:
    job = submit_job(engine)
    lease = claim(engine)
    assert lease is not None
    queue.cancel(engine, job_id=job.id)
    assert not queue.holds(engine, lease=lease)
    assert not queue.succeed(engine, lease=lease, runtime_seconds=1, results=COMPLETED)
    assert reload(engine, job.id).status == JobStatus.cancelled


def test_cancelling_a_finished_job_is_refused(engine: Engine) -> None:
    job = submit_job(engine)
    lease = claim(engine)
    assert lease is not None
    queue.succeed(engine, lease=lease, runtime_seconds=1, results=COMPLETED)
    with pytest.raises(queue.JobIsFinal):
        queue.cancel(engine, job_id=job.id)
    assert queue.cancel(engine, job_id="unknown") is None


def test_the_same_idempotency_key_and_body_return_the_same_job(engine: Engine) -> None:
    job_in = JobCreate(name="once", hyperparameters=Hyperparameters(epochs=2))
    first, created = queue.submit(engine, job_in=job_in, idempotency_key="k-1")
    again, created_again = queue.submit(engine, job_in=job_in, idempotency_key="k-1")
    assert (created, created_again, again.id) == (True, False, first.id)
    with pytest.raises(queue.IdempotencyConflict):
        queue.submit(engine, job_in=JobCreate(name="other"), idempotency_key="k-1")
