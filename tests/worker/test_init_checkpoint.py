"""The supervisor hands its training process the checkpoint init_from names, or fails the job
when the source no longer has it: real SQLite, a real forked process that reports what it got."""

from __future__ import annotations

import multiprocessing
import threading
import time
from multiprocessing.connection import Connection

from sqlalchemy import Engine

from app import queue
from app.contract import CheckpointFile, FailureReason
from app.db import read_session
from app.hyperparameters import Hyperparameters
from app.models import Job, JobCreate, JobStatus
from app.settings import Settings
from tests.factories import COMPLETED, ONE_CPU, list_checkpoint
from worker.protocol import Failed, TrainingTask
from worker.supervisor import JobSupervisor

SOURCE_FILE = "attempt-1/epoch-0002.pt"


def reports_its_init_file(conn: Connection, task: TrainingTask) -> None:
    conn.send(Failed(reason=FailureReason.training_error, message=f"init_file={task.init_file}"))


def claim(engine: Engine) -> queue.Lease:
    lease = queue.claim(engine, worker_id="test", lease_seconds=30, capabilities=ONE_CPU)
    assert lease is not None
    return lease


def source_job(engine: Engine, settings: Settings) -> str:
    """A succeeded job whose best checkpoint is epoch 2, listed but not (yet) written to disk."""
    queue.submit(engine, job_in=JobCreate())
    lease = claim(engine)
    checkpoint = CheckpointFile(epoch=2, file_name=SOURCE_FILE, size_bytes=1, sha256="0" * 64, is_best=True)
    assert list_checkpoint(engine, lease=lease, checkpoint=checkpoint) is not None
    queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=COMPLETED)
    return lease.job_id


def run_job_from(engine: Engine, settings: Settings, source: str) -> Job:
    hp = Hyperparameters(init_from={"job": source, "checkpoint": "best"}, freeze_backbone=True)
    job, _ = queue.submit(engine, job_in=JobCreate(hyperparameters=hp))
    lease = claim(engine)
    JobSupervisor(
        engine=engine,
        settings=settings,
        lease=lease,
        lease_deadline=time.monotonic() + 30,
        stop=threading.Event(),
        mp=multiprocessing.get_context("fork"),
        cpu_threads=1,
        process_main=reports_its_init_file,
    ).run()
    with read_session(engine) as session:
        stored = session.get(Job, job.id)
        assert stored is not None
        return stored


def test_the_training_process_gets_the_source_checkpoint_in_the_shared_folder(
    engine: Engine, settings: Settings
) -> None:
    source = source_job(engine, settings)
    path = (settings.artifacts_dir / source / SOURCE_FILE).resolve()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")
    job = run_job_from(engine, settings, source)
    assert job.error_message == f"init_file={path}"


def test_a_source_checkpoint_gone_since_the_submit_fails_the_job_with_checkpoint_error(
    engine: Engine, settings: Settings
) -> None:
    job = run_job_from(engine, settings, source_job(engine, settings))
    assert (job.status, job.error_reason) == (JobStatus.failed, FailureReason.checkpoint_error)
    assert job.error_message is not None
    assert "no longer has checkpoint 'best'" in job.error_message
