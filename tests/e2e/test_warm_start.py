"""A job started from another job's weights, on a live service and worker: submitted through the
API with init_from, and repeated with `trainq submit --from`."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Service
from tests.support.cli import trainq

# small_cnn's state dict: two convolutions, two batch norms (5 tensors each) and the linear head.
SMALL_CNN_TENSORS = 14
# A fine-tuning step: small enough that one epoch keeps what the source learnt.
FINE_TUNING_LR = 1e-4


def best_accuracy(job: dict) -> float:
    best = next(entry["epoch"] for entry in job["checkpoints"] if entry["is_best"])
    return float(job["metrics"][best - 1]["val_accuracy"])


def test_a_job_started_from_a_best_checkpoint_begins_at_the_sources_accuracy(
    live: Service, finished_job: dict
) -> None:
    source = finished_job
    best_epoch = next(entry["epoch"] for entry in source["checkpoints"] if entry["is_best"])
    job_id = live.submit(
        "warm",
        dataset="digits",
        epochs=1,
        batch_size=64,
        learning_rate=FINE_TUNING_LR,
        init_from={"job": source["id"], "checkpoint": "best"},
    )
    job = live.wait_until_final(job_id)
    assert job["status"] == "succeeded", job
    assert job["warm_start"] == {
        "job": source["id"],
        "epoch": best_epoch,
        "loaded": SMALL_CNN_TENSORS,
        "new": [],
    }
    assert job["metrics"][0]["val_accuracy"] >= best_accuracy(source) - 0.05


def test_submit_from_repeats_a_job_with_the_command_lines_changes(
    live: Service, finished_job: dict, tmp_path: Path
) -> None:
    source = finished_job
    warm = tmp_path / "warm.yaml"
    warm.write_text(f"init_from: {{job: {source['id']}, checkpoint: latest}}\n")
    submitted = trainq(
        live, "submit", "--from", source["id"], "-f", str(warm), "--epochs", "1", "--name", "again",
        "-s", "freeze_backbone=true",
    )  # fmt: skip
    assert submitted.exit_code == 0, submitted.output
    job = live.wait_until_final(submitted.stdout.strip())
    assert job["status"] == "succeeded", job
    changed = {
        "epochs": 1,
        "freeze_backbone": True,
        "init_from": {"job": source["id"], "checkpoint": "latest"},
    }
    assert job["hyperparameters"] == {**source["hyperparameters"], **changed}
    assert (job["name"], job["max_attempts"], job["resources"]) == (
        "again",
        source["max_attempts"],
        source["resources"],
    )
    assert job["warm_start"]["job"] == source["id"]
    assert job["warm_start"]["epoch"] == max(entry["epoch"] for entry in source["checkpoints"])


def test_submit_from_an_unknown_job_says_so(live: Service) -> None:
    result = trainq(live, "submit", "--from", "0" * 32)
    assert result.exit_code == 1, result.output
    assert "not found" in result.stderr
