"""The whole path with real processes: uvicorn, `python -m worker`, a SQLite file."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits

from tests.e2e.conftest import Service, running_service
from tests.e2e.jobs import LONG_JOB
from tests.support.polling import wait_for
from worker import load_model
from worker.supervisor import HOLD_CHECK_INTERVAL_S, LOG_UPLOAD_INTERVAL_S

PAST_THE_RELAYS_TIMERS_S = max(HOLD_CHECK_INTERVAL_S, LOG_UPLOAD_INTERVAL_S) + 2

EPOCHS = 10


def test_a_digits_job_trains_through_the_api_while_metrics_stream_in(service: Service, tmp_path) -> None:
    service.start_worker()
    job_id = service.submit("digits-baseline", dataset="digits", model="small_cnn", epochs=EPOCHS)

    seen_while_running: list[int] = []

    def finished() -> dict | None:
        job = service.job(job_id)
        epochs = [row["epoch"] for row in job["metrics"]]
        assert epochs == list(range(1, len(epochs) + 1)), "metric rows arrive in epoch order, once each"
        if job["status"] == "running":
            seen_while_running.append(len(epochs))
        return job if job["status"] in {"succeeded", "failed"} else None

    job = wait_for(finished, timeout_s=180, interval_s=0.02, what="the digits job to end")
    assert job["status"] == "succeeded", job["error"]
    assert any(0 < count < EPOCHS for count in seen_while_running), (
        f"metric rows should appear while the job runs, saw counts {sorted(set(seen_while_running))}"
    )
    assert len(job["metrics"]) == EPOCHS
    assert (job["attempts"], job["progress"], job["current_epoch"]) == (1, 1.0, EPOCHS)
    assert (job["device"], job["precision"]) == ("cpu", "fp32")
    assert job["started_at"] is not None
    assert job["finished_at"] is not None
    assert max(row["val_accuracy"] for row in job["metrics"]) >= 0.95
    assert all(row["samples_per_second"] > 0 and row["attempt"] == 1 for row in job["metrics"])

    best = next(c for c in job["checkpoints"] if c["is_best"])
    download = service.http.get(f"/jobs/{job_id}/checkpoints/best")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == best["sha256"]
    assert download.headers["etag"] == f'"{best["sha256"]}"'
    path = tmp_path / "best.pt"
    path.write_bytes(download.content)

    model = load_model(path)
    assert not model.training
    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    with torch.no_grad():
        predictions = model(images).argmax(dim=1)
    accuracy = (predictions == torch.tensor(digits.target)).float().mean().item()
    assert accuracy >= 0.95


def test_a_burst_worker_drains_the_queue_records_failures_and_exits_zero(service: Service) -> None:
    good = [service.submit(f"quick-{i}", epochs=1) for i in range(2)]
    missing_folder = service.submit("no-data", dataset="imagefolder", dataset_path="not/there")
    missing_mnist = service.submit("no-mnist", dataset="mnist", epochs=1)
    no_gpu = service.submit("no-gpu", device="cuda", epochs=1)
    crashes = service.submit("batchnorm-on-one-value", model="resnet18", batch_size=1, epochs=1)

    # It says it has a GPU, so it claims the cuda job too, and fails it as a CPU-only machine must.
    worker = service.start_worker("--burst", TRAINQ_WORKER_DEVICES="cuda:1")
    assert worker.wait(timeout_s=180) == 0, worker.log()

    for job_id in good:
        assert service.job(job_id)["status"] == "succeeded"
    folder_job = service.job(missing_folder)
    assert folder_job["status"] == "failed"
    assert folder_job["error"]["reason"] == "data_error"
    assert "not/there" in folder_job["error"]["message"]
    mnist_job = service.job(missing_mnist)
    assert mnist_job["status"] == "failed"
    assert mnist_job["error"]["reason"] == "data_error"
    assert "TRAINQ_DATA_DIR/MNIST/raw/" in mnist_job["error"]["message"]
    # The owner reads folders by the settings that name them, not by the worker's own paths.
    failed = [folder_job, mnist_job, service.job(no_gpu), service.job(crashes)]
    assert not [
        job["error"]["message"] for job in failed if str(service.state_dir) in job["error"]["message"]
    ]
    gpu_job = service.job(no_gpu)
    assert (gpu_job["status"], gpu_job["error"]["reason"]) == ("failed", "invalid_config")
    assert "CUDA" in gpu_job["error"]["message"]
    crashed = service.job(crashes)
    assert (crashed["status"], crashed["error"]["reason"]) == ("failed", "training_error")
    assert "ValueError" in crashed["error"]["message"]
    # Failures of the job itself are not retried.
    assert [service.job(j)["attempts"] for j in (missing_folder, missing_mnist, no_gpu, crashes)] == [1] * 4


def test_a_worker_with_the_default_lease_supervises_a_long_job_past_every_timer(tmp_path: Path) -> None:
    # The e2e lease (2 s) makes a heartbeat due every half second; at the default (60 s) the
    # relay's other timers come first for 15 s. A job runs well past them, the worker alive.
    with running_service(tmp_path, TRAINQ_LEASE_SECONDS="60") as service:
        worker = service.start_worker()
        job_id = service.submit("long", **{**LONG_JOB, "epochs": 200})
        service.wait_for_job(job_id, lambda job: job["status"] == "running", "the job to start")
        started = time.monotonic()

        def past_the_timers() -> bool:
            assert worker.process.poll() is None, worker.log()[-3000:]
            return time.monotonic() - started > PAST_THE_RELAYS_TIMERS_S

        wait_for(past_the_timers, timeout_s=60, interval_s=0.2, what="the job to run past the timers")
        assert service.job(job_id)["status"] == "running"
        assert service.http.post(f"/jobs/{job_id}/cancel").status_code == 200
        assert service.wait_until_final(job_id)["status"] == "cancelled"
        assert worker.process.poll() is None
