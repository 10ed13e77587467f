"""One job on several devices: torchrun with two gloo ranks on the CPU, through the real service."""

from __future__ import annotations

import signal

import pytest
import torch

from tests.e2e.conftest import Service
from tests.e2e.jobs import LONG_JOB
from tests.support.polling import wait_for
from worker import load_model
from worker.devices import count_cpus
from worker.orphans import processes_of

TWO_CPUS = {"devices": 2}
# Each test starts torchrun (and torch in every rank) two or three times: on a slow, shared
# machine that alone can take minutes, so the suite's 300 s per test is too short here.
pytestmark = pytest.mark.timeout(900)


def submit(service: Service, name: str, resources: dict[str, object], **hyperparameters: object) -> str:
    body = {"name": name, "hyperparameters": {"device": "cpu", **hyperparameters}, "resources": resources}
    response = service.http.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# Stopped and resumed (by SIGTERM mid-epoch, by kill -9) in the tests below; both must end
# on the weights of one uninterrupted run of it.
RESUMED_JOB = {**LONG_JOB, "fake_samples": 5000, "epochs": 3, "seed": 7}


@pytest.fixture(scope="module")
def uninterrupted_weights(live: Service) -> dict[str, torch.Tensor]:
    job_id = submit(live, "uninterrupted", TWO_CPUS, **RESUMED_JOB)
    assert live.wait_until_final(job_id, timeout_s=300)["status"] == "succeeded"
    return dict(live.checkpoint_state(job_id, "latest")["model_state_dict"])


def same_weights(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> bool:
    return expected.keys() == actual.keys() and all(torch.equal(expected[k], actual[k]) for k in expected)


def ranks_running(job_id: str) -> list[int]:
    """torchrun and its ranks, once both ranks are up."""
    pids = processes_of(job_id)
    return pids if len(pids) >= 3 else []


def test_a_two_device_job_writes_one_metric_row_per_epoch_and_learns_like_one_device(
    service: Service, tmp_path
) -> None:
    service.start_worker()
    job = {"dataset": "digits", "model": "small_cnn", "epochs": 4, "seed": 3}
    # The batch size is per device: two devices of 32 take the steps of one device of 64.
    one = submit(service, "one device", {"devices": 1}, batch_size=64, **job)
    two = submit(service, "two devices", TWO_CPUS, batch_size=32, **job)

    single, double = service.wait_until_final(one), service.wait_until_final(two, timeout_s=300)
    assert double["status"] == "succeeded", double["error"]
    assert [row["epoch"] for row in double["metrics"]] == [1, 2, 3, 4]
    assert double["resources"]["devices"] == 2
    # The worker's CPUs (this process's affinity) go to one process, or are split between the ranks.
    cpus = count_cpus()
    assert single["cpu_threads"] == {"intra_op": cpus, "inter_op": cpus}
    assert double["cpu_threads"] == {"intra_op": max(1, cpus // 2), "inter_op": max(1, cpus // 2)}
    assert abs(double["metrics"][-1]["val_accuracy"] - single["metrics"][-1]["val_accuracy"]) < 0.05
    # The best epoch evaluated over both ranks' shards counts every validation sample once, and
    # rank 0 alone wrote the export.
    evaluated = double["val_metrics"]
    assert evaluated["epoch"] == double["best_epoch"]
    assert sum(map(sum, evaluated["confusion_matrix"])) == double["dataset_info"]["val_samples"]
    best_row = next(row for row in double["metrics"] if row["epoch"] == double["best_epoch"])
    assert abs(evaluated["accuracy"] - best_row["val_accuracy"]) < 1e-6
    assert [export["name"] for export in double["exports"]] == ["model.safetensors"]
    path = tmp_path / "two.pt"
    path.write_bytes(service.http.get(f"/jobs/{two}/checkpoints/latest").content)
    model = load_model(path)
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
    # The same keys as a one-device checkpoint: DDP's wrapper is not saved.
    assert service.checkpoint_state(two, "latest")["model_state_dict"].keys() == (
        service.checkpoint_state(one, "latest")["model_state_dict"].keys()
    )


def test_killing_the_worker_of_a_two_device_job_kills_every_rank_and_another_worker_resumes_it(
    service: Service, uninterrupted_weights: dict[str, torch.Tensor]
) -> None:
    first = service.start_worker()
    job_id = submit(service, "killed", TWO_CPUS, **RESUMED_JOB)
    service.wait_for_job(
        job_id, lambda job: len(job["checkpoints"]) >= 1, "a first checkpoint", timeout_s=300
    )
    assert wait_for(lambda: ranks_running(job_id), timeout_s=60, what="torchrun and both ranks")
    first.process.kill()
    wait_for(lambda: processes_of(job_id) == [], timeout_s=10, what="every process of the job to die")

    service.start_worker()
    resumed = service.wait_until_final(job_id, timeout_s=300)
    assert (resumed["status"], resumed["attempts"]) == ("succeeded", 2), resumed["error"]
    assert [row["epoch"] for row in resumed["metrics"]] == [1, 2, 3]
    assert same_weights(uninterrupted_weights, service.checkpoint_state(job_id, "latest")["model_state_dict"])


def test_cancelling_a_two_device_job_stops_every_rank_within_seconds(service: Service) -> None:
    service.start_worker()
    job_id = submit(service, "cancelled", TWO_CPUS, epochs=50, **LONG_JOB)
    service.wait_for_job(
        job_id, lambda job: len(job["checkpoints"]) >= 1, "a first checkpoint", timeout_s=300
    )
    assert wait_for(lambda: ranks_running(job_id), timeout_s=60, what="torchrun and both ranks")
    assert service.http.post(f"/jobs/{job_id}/cancel").status_code == 200
    wait_for(lambda: processes_of(job_id) == [], timeout_s=5, what="every rank to stop after cancel")
    assert service.job(job_id)["status"] == "cancelled"


def test_a_two_device_job_stopped_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run(
    service: Service, uninterrupted_weights: dict[str, torch.Tensor]
) -> None:
    worker = service.start_worker()
    interrupted = submit(service, "interrupted", TWO_CPUS, **RESUMED_JOB)
    service.wait_for_job(interrupted, lambda job: len(job["metrics"]) == 1, "the second epoch", timeout_s=300)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout_s=60) == 0, worker.log()
    log = service.http.get(f"/jobs/{interrupted}/logs").text
    assert "stop requested in epoch 2 after batch" in log
    assert service.job(interrupted)["status"] == "queued"

    service.start_worker()
    resumed = service.wait_until_final(interrupted, timeout_s=300)
    assert (resumed["status"], resumed["attempts"]) == ("succeeded", 2), resumed["error"]
    assert [row["epoch"] for row in resumed["metrics"]] == [1, 2, 3]
    assert same_weights(
        uninterrupted_weights, service.checkpoint_state(interrupted, "latest")["model_state_dict"]
    )


def test_a_two_device_job_that_fails_in_its_ranks_stores_the_reason_rank_0_reports(service: Service) -> None:
    # This worker says it has two GPUs, so it takes the job; the ranks find none.
    service.start_worker(TRAINQ_WORKER_DEVICES="cuda:2")
    response = service.http.post(
        "/jobs",
        json={"hyperparameters": {"device": "cuda", "epochs": 1}, "resources": {"devices": 2}},
    )
    assert response.status_code == 201, response.text
    job = service.wait_until_final(response.json()["id"], timeout_s=300)
    assert (job["status"], job["error"]["reason"]) == ("failed", "invalid_config")
    assert "CUDA" in job["error"]["message"]
