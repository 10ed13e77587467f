"""A stalled worker's attempt never writes beside the next one: its training process exits by
itself once its lease deadline passes, and every attempt writes into a folder of its own."""

from __future__ import annotations

import os
import signal

from tests.e2e.conftest import Service
from tests.support.artifacts import (
    assert_listed_checkpoints_download_intact,
    files_under,
    stop_holding_no_write_lock,
    unlisted_files,
)
from tests.support.polling import wait_for
from tests.support.processes import is_alive, training_pids

# Under a second an epoch: a job that a second worker finishes within seconds.
JOB = {"dataset": "fake", "fake_samples": 3000, "image_size": 16, "batch_size": 32, "epochs": 6}
# Far more epochs than any machine trains in the seconds a lease lasts.
LONG_JOB = {**JOB, "epochs": 500}


def _stall_first_worker_after_a_checkpoint(service: Service, job: dict) -> tuple[str, int]:
    """(job id, its training process) once the first worker is SIGSTOPped mid-training."""
    first = service.start_worker()
    job_id = service.submit("stalled", **job)
    service.wait_for_job(job_id, lambda job: len(job["checkpoints"]) >= 1, "a first checkpoint")
    (trainer,) = training_pids(first)
    stop_holding_no_write_lock(first.pid, service.state_dir / "trainq.db")
    return job_id, trainer


def test_a_stalled_workers_training_process_stops_by_itself_before_another_worker_takes_over(
    service: Service,
) -> None:
    job_id, trainer = _stall_first_worker_after_a_checkpoint(service, LONG_JOB)
    first = service.workers[0]
    # Nothing tells it to stop: its worker is frozen, the pipe stays open. (Its log line reaches
    # the worker's stderr, which the frozen worker does not have to read.)
    wait_for(
        lambda: "lease of this attempt ran out" in first.log(),
        timeout_s=30,
        what="the stale training process to stop by itself",
    )
    wait_for(lambda: not is_alive(trainer), timeout_s=30, what="the stale training process to exit")

    service.start_worker()
    service.wait_for_job(
        job_id, lambda job: any(row["attempt"] == 2 for row in job["metrics"]), "an epoch of attempt 2"
    )
    # What the first attempt wrote after its worker froze was never listed, and is gone.
    assert [name for name in unlisted_files(service.state_dir, job_id) if name.startswith("attempt-1/")] == []
    assert_listed_checkpoints_download_intact(service.http, job_id)
    assert service.http.post(f"/jobs/{job_id}/cancel").status_code == 200

    # The frozen worker wakes up, finds its lease gone and leaves the second attempt's files alone.
    os.kill(first.pid, signal.SIGCONT)
    wait_for(lambda: "lease lost" in first.log(), timeout_s=30, what="the first worker to see its lease gone")
    assert service.job(job_id)["status"] == "cancelled"
    assert_listed_checkpoints_download_intact(service.http, job_id)


def test_a_stale_training_process_woken_after_the_job_succeeded_changes_nothing_a_user_sees(
    service: Service,
) -> None:
    job_id, trainer = _stall_first_worker_after_a_checkpoint(service, JOB)
    os.kill(trainer, signal.SIGSTOP)  # a paused machine: the worker and its training process alike
    service.start_worker()
    job = service.wait_until_final(job_id, timeout_s=180)
    assert (job["status"], job["attempts"]) == ("succeeded", 2), job["error"]
    listed = assert_listed_checkpoints_download_intact(service.http, job_id)
    log = service.http.get(f"/jobs/{job_id}/logs").text
    job_folder = service.state_dir / "artifacts" / job_id
    before = files_under(job_folder)

    os.kill(trainer, signal.SIGCONT)  # only the training process wakes up, its lease long gone
    wait_for(lambda: not is_alive(trainer), timeout_s=30, what="the stale training process to exit")
    after = files_under(job_folder)
    # Its own folder may get a file it was renaming into place when it froze; no row ever lists it.
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    assert not {name for name in changed if not name.startswith("attempt-1/")}, sorted(changed)
    assert service.http.get(f"/jobs/{job_id}/logs").text == log
    assert assert_listed_checkpoints_download_intact(service.http, job_id) == listed
    os.kill(service.workers[0].pid, signal.SIGCONT)
