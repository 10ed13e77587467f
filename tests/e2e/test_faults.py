"""Jobs survive crashes: real workers killed, stopped, cancelled and timed out."""

from __future__ import annotations

import os
import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import torch

from tests.e2e.conftest import COUNTING_LEASE_SECONDS, Service, running_service
from tests.e2e.jobs import LONG_JOB, TINY_JOB
from tests.support.artifacts import unlisted_files
from tests.support.polling import wait_for
from tests.support.processes import is_alive, stop_when, training_pids


def metric_epochs(job: dict) -> list[int]:
    return [row["epoch"] for row in job["metrics"]]


def mid_epoch_after_a_checkpoint(job: dict) -> bool:
    epochs = job["hyperparameters"]["epochs"]
    return len(job["checkpoints"]) >= 1 and job["progress"] > (len(job["metrics"]) + 0.1) / epochs


def test_four_workers_drain_a_hundred_jobs_each_run_exactly_once(tmp_path: Path) -> None:
    with running_service(tmp_path, TRAINQ_LEASE_SECONDS=COUNTING_LEASE_SECONDS) as service:
        job_ids = [service.submit(f"tiny-{i}", **TINY_JOB) for i in range(100)]
        workers = [service.start_worker("--burst") for _ in range(4)]
        for worker in workers:
            assert worker.wait(timeout_s=300) == 0, worker.log()[-3000:]

        jobs = [service.job(job_id) for job_id in job_ids]
        assert [job["status"] for job in jobs] == ["succeeded"] * 100
        assert [job["attempts"] for job in jobs] == [1] * 100
        assert all([(row["epoch"], row["attempt"]) for row in job["metrics"]] == [(1, 1)] for job in jobs)
        # Every worker took part, so the claims really raced.
        assert all("claimed by" in worker.log() for worker in workers)


@pytest.mark.parametrize("kill_point", ["during an epoch", "right after a checkpoint"])
def test_a_job_whose_worker_is_killed_is_resumed_by_another_after_its_latest_checkpoint(
    service: Service, kill_point: str
) -> None:
    first = service.start_worker()
    if kill_point == "during an epoch":
        # Long epochs (seconds each), so that progress (written once a second) shows the middle of one.
        job_id = service.submit("killed", epochs=2, **{**LONG_JOB, "fake_samples": 20000})
        (trainer,) = wait_for(lambda: training_pids(first), timeout_s=60, what="a training process")
        stop_when(
            trainer,
            lambda: mid_epoch_after_a_checkpoint(service.job(job_id)),
            what="the job to be into an epoch after its first checkpoint",
        )
    else:
        job_id = service.submit("killed", epochs=4, **{**LONG_JOB, "fake_samples": 6000})
        (trainer,) = wait_for(lambda: training_pids(first), timeout_s=60, what="a training process")
        stop_when(
            trainer,
            lambda: max((c["epoch"] for c in service.job(job_id)["checkpoints"]), default=0) >= 2,
            what="a second checkpoint",
        )
    first.process.kill()
    first.wait(timeout_s=10)
    # Let go, it finds its pipe closed and exits.
    os.kill(trainer, signal.SIGCONT)
    wait_for(lambda: not is_alive(trainer), timeout_s=10, what="the training process to die with its worker")
    # Read once both are dead: an epoch the supervisor had in its pipe may have landed meanwhile.
    before = service.job(job_id)
    assert before["status"] == "running", before

    second = service.start_worker()
    job = service.wait_until_final(job_id, timeout_s=180)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2
    assert metric_epochs(job) == list(range(1, job["hyperparameters"]["epochs"] + 1))
    checkpointed = max(c["epoch"] for c in before["checkpoints"])
    attempts = {row["epoch"]: row["attempt"] for row in job["metrics"]}
    assert all(attempts[e] == 1 for e in range(1, checkpointed + 1)), attempts
    assert all(attempts[e] == 2 for e in range(checkpointed + 1, len(attempts) + 1)), attempts
    assert f"resume from {service.state_dir}" in second.log()
    # What the killed attempt was writing (a partial file) went with the next attempt. The job is
    # final before its worker has cleared attempt-1/: once the worker has exited, the folder is settled.
    second.stop()
    assert second.process.returncode == 0, second.log()
    assert unlisted_files(service.state_dir, job_id) == []


def test_cancelling_a_running_job_stops_it_within_seconds_and_the_worker_goes_on(service: Service) -> None:
    worker = service.start_worker()
    job_id = service.submit("cancel-me", epochs=50, **LONG_JOB)
    service.wait_for_job(job_id, lambda job: len(job["checkpoints"]) >= 1, "a first checkpoint")
    service.wait_for_job(job_id, lambda job: job["progress"] * 50 % 1 > 0.2, "the middle of an epoch")
    (trainer,) = training_pids(worker)
    # Operators find a one-device job's process by its name.
    assert Path(f"/proc/{trainer}/comm").read_text().strip() == f"trainq-{job_id[:8]}"
    assert service.http.post(f"/jobs/{job_id}/cancel").status_code == 200
    wait_for(lambda: not is_alive(trainer), timeout_s=5, what="the training process to stop after cancel")

    job = service.job(job_id)
    assert job["status"] == "cancelled"
    kept = job["checkpoints"]
    assert kept
    assert service.http.get(f"/jobs/{job_id}/checkpoints/latest").status_code == 200
    next_job = service.submit("after-cancel", **TINY_JOB)
    assert service.wait_until_final(next_job)["status"] == "succeeded"
    assert service.job(job_id)["checkpoints"] == kept


def test_a_job_past_its_time_limit_fails_with_timeout_and_keeps_its_checkpoints(service: Service) -> None:
    first = service.start_worker()
    job_id = service.submit("time-limited", epochs=100, **LONG_JOB)
    service.wait_for_job(job_id, lambda job: len(job["checkpoints"]) >= 1, "a first checkpoint")
    first.signal(signal.SIGTERM)
    assert first.wait(timeout_s=60) == 0, first.log()
    handed_back = service.job(job_id)
    # Only now that a checkpoint exists does the limit start to matter: it is set to run out two
    # seconds into the next attempt, however long this machine took to get here.
    limit_s = handed_back["runtime_seconds"] + 2
    with closing(sqlite3.connect(service.state_dir / "trainq.db")) as db, db:
        db.execute("UPDATE jobs SET max_runtime_seconds = ? WHERE id = ?", (limit_s, job_id))

    service.start_worker()
    job = service.wait_until_final(job_id, timeout_s=60)
    assert (job["status"], job["error"]["reason"], job["attempts"]) == ("failed", "timeout", 2)
    assert f"max_runtime_seconds={limit_s:g}" in job["error"]["message"]
    assert limit_s <= job["runtime_seconds"] < limit_s + 30
    assert len(job["checkpoints"]) >= len(handed_back["checkpoints"])
    assert service.http.get(f"/jobs/{job_id}/checkpoints/latest").status_code == 200


def test_a_diverging_job_fails_with_nan_loss_and_no_poisoned_checkpoint(service: Service) -> None:
    service.start_worker()
    job_id = service.submit(
        "diverges",
        epochs=3,
        optimizer="sgd",
        momentum=0.0,
        learning_rate=10.0,
        weight_decay=1.0,
        batch_size=32,
    )
    job = service.wait_until_final(job_id)
    assert (job["status"], job["error"]["reason"]) == ("failed", "nan_loss")
    assert "learning_rate" in job["error"]["message"]
    assert job["checkpoints"] == []
    assert job["attempts"] == 1


def test_a_training_process_killed_by_the_os_is_retried(service: Service) -> None:
    worker = service.start_worker()
    job_id = service.submit("oom-killed", epochs=3, **LONG_JOB)
    (trainer,) = wait_for(lambda: training_pids(worker), timeout_s=60, what="a training process")
    stop_when(trainer, lambda: 0.05 < service.job(job_id)["progress"] < 1, what="training to start")
    os.kill(trainer, signal.SIGKILL)
    job = service.wait_until_final(job_id, timeout_s=120)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 2
    assert "out_of_memory" in worker.log()


def test_a_second_signal_exits_at_once_and_the_lease_brings_the_job_back(service: Service) -> None:
    worker = service.start_worker()
    job_id = service.submit("abandoned", **{**LONG_JOB, "epochs": 5})
    wait_for(lambda: "training small_cnn on" in worker.log(), timeout_s=60, what="training to start")
    (trainer,) = training_pids(worker)
    # Held mid-batch, so that the second signal surely comes before the hand-back, on any machine.
    os.kill(trainer, signal.SIGSTOP)
    worker.signal(signal.SIGTERM)
    # Two signals sent at once arrive as one; the second must come after the first was handled.
    wait_for(lambda: "asking the training process to stop" in worker.log(), timeout_s=10)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout_s=10) != 0
    os.kill(trainer, signal.SIGCONT)
    assert "handed back" not in worker.log()
    job = service.wait_for_job(
        job_id, lambda job: job["status"] == "queued", "the API to take the job back", timeout_s=30
    )
    assert job["error"]["reason"] == "worker_lost"


def test_sigterm_mid_epoch_hands_the_job_back_and_the_resumed_run_is_bit_identical(service: Service) -> None:
    job = {**LONG_JOB, "fake_samples": 5000, "epochs": 3, "seed": 7}
    reference = service.submit("uninterrupted", **job)
    worker = service.start_worker()
    assert service.wait_until_final(reference)["status"] == "succeeded"

    interrupted = service.submit("interrupted", **job)
    service.wait_for_job(interrupted, lambda job: len(job["metrics"]) == 1, "the second epoch")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout_s=60) == 0, worker.log()
    assert "stop requested in epoch 2 after batch" in worker.log()
    handed_back = service.job(interrupted)
    assert handed_back["status"] == "queued"
    assert handed_back["error"] is None
    assert "resume.pt" in os.listdir(service.state_dir / "artifacts" / interrupted / "attempt-1")

    service.start_worker()
    resumed = service.wait_until_final(interrupted)
    assert (resumed["status"], resumed["attempts"]) == ("succeeded", 2)
    assert metric_epochs(resumed) == [1, 2, 3]
    # The worker hung up once it had the hand-back: no reason for an error in the job's log.
    assert "supervising worker is gone" not in service.http.get(f"/jobs/{interrupted}/logs").text
    expected = service.checkpoint_state(reference, "latest")["model_state_dict"]
    actual = service.checkpoint_state(interrupted, "latest")["model_state_dict"]
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    reference_rows = service.job(reference)["metrics"]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert [row[key] for row in resumed["metrics"]] == [row[key] for row in reference_rows]
