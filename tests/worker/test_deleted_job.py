"""A job deleted while its training process still writes: the worker removes what it wrote since."""

from __future__ import annotations

import multiprocessing
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from sqlalchemy import Engine

from app import housekeeping, queue
from app.settings import Settings
from tests.factories import ONE_CPU, submit_job
from tests.support.polling import wait_for
from worker.protocol import Started, TrainingTask
from worker.supervisor import JobSupervisor

WRITE_INTERVAL_S = 0.02


def keeps_writing_checkpoints(conn: Connection, task: TrainingTask) -> None:
    """Writes into its attempt's folder (creating it again, as write_checkpoint does) until killed."""
    conn.send(Started(device="cpu", precision="fp32"))
    epoch = 0
    while True:
        epoch += 1
        folder = Path(task.checkpoint_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"epoch-{epoch:04d}.pt").write_bytes(b"weights")
        time.sleep(WRITE_INTERVAL_S)


def test_a_job_deleted_while_its_process_still_writes_leaves_no_folder(
    engine: Engine, settings: Settings
) -> None:
    job = submit_job(engine)
    lease_deadline = time.monotonic() + settings.lease_seconds
    lease = queue.claim(engine, worker_id="test", lease_seconds=settings.lease_seconds, capabilities=ONE_CPU)
    assert lease is not None
    folder = settings.artifacts_dir / job.id

    def cancel_and_delete_once_it_writes() -> None:
        wait_for(lambda: any(folder.glob("attempt-1/epoch-*.pt")), timeout_s=60, what="a checkpoint")
        queue.cancel(engine, job_id=job.id)
        assert housekeeping.delete_job(
            engine, artifacts_dir=settings.artifacts_dir, job_id=job.id, owner=None
        )
        # The process writes on until the supervisor sees the lease gone.
        wait_for(folder.exists, timeout_s=30, interval_s=0.005, what="the folder written again")

    user = threading.Thread(target=cancel_and_delete_once_it_writes)
    user.start()
    JobSupervisor(
        engine=engine,
        settings=settings,
        lease=lease,
        lease_deadline=lease_deadline,
        stop=threading.Event(),
        mp=multiprocessing.get_context("fork"),
        cpu_threads=1,
        process_main=keeps_writing_checkpoints,
    ).run()
    user.join()

    assert queue.is_deleted(engine, job_id=job.id)
    assert not folder.exists()
    assert list(settings.artifacts_dir.iterdir()) == []
