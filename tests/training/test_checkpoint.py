from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from app.hyperparameters import Hyperparameters
from worker.training import (
    RESUME_FILENAME,
    CheckpointError,
    EpochMetrics,
    checkpoint_filename,
    evaluate,
    load_model,
)
from worker.training.checkpoint import read_checkpoint, write_checkpoint
from worker.training.data import build_data
from worker.training.distributed import ONE_RANK

Train = Callable[..., Any]  # the `train` fixture from conftest.py

CHECKPOINT_KEYS = {
    "format_version",
    "epoch",
    "batches_done",
    "epoch_progress",
    "hyperparameters",
    "model_name",
    "num_classes",
    "in_channels",
    "image_size",
    "model_args",
    "class_names",
    "eval_transform",
    "model_state_dict",
    "optimizer_state_dict",
    "scheduler_state_dict",
    "scaler_state_dict",
    "early_stopping_state_dict",
    "best_metric",
    "best_epoch",
    "metrics",
    "rng_state",
    "rank_rng_states",
}


def test_checkpoint_filenames_are_zero_padded_so_they_sort_by_epoch() -> None:
    assert checkpoint_filename(3) == "epoch-0003.pt"
    assert checkpoint_filename(1000) == "epoch-1000.pt"


def test_write_checkpoint_reports_the_size_and_sha256_of_the_file_it_leaves(tmp_path: Path) -> None:
    path, size, sha256 = write_checkpoint({"weights": torch.arange(10.0)}, tmp_path / "ck", epoch=7)

    assert path == (tmp_path / "ck" / "epoch-0007.pt").resolve()
    assert path.is_absolute()
    assert size == path.stat().st_size
    assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in path.parent.iterdir()] == ["epoch-0007.pt"]  # no temporary file left
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.arange(10.0))


def test_a_failed_write_leaves_the_previous_file_untouched_and_no_temporary_file(tmp_path: Path) -> None:
    path, _, sha256 = write_checkpoint({"weights": torch.ones(3)}, tmp_path, epoch=1)

    with pytest.raises(Exception, match="pickle"):
        write_checkpoint({"weights": torch.zeros(3), "unpicklable": lambda: None}, tmp_path, epoch=1)

    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def test_a_run_checkpoint_has_constant_keys_and_loads_with_weights_only(train: Train) -> None:
    run = train(epochs=2, lr_scheduler="step", step_size=1, early_stopping_patience=5)

    info = run.recorder.checkpoints[-1]
    assert info.path == run.checkpoint_dir.resolve() / checkpoint_filename(2)
    assert info.size_bytes == info.path.stat().st_size
    assert info.sha256 == hashlib.sha256(info.path.read_bytes()).hexdigest()
    state = torch.load(info.path, map_location="cpu", weights_only=True)
    assert set(state) == CHECKPOINT_KEYS
    assert state["format_version"] == 2
    assert (state["epoch"], state["model_name"], state["num_classes"]) == (2, "mlp", 10)
    assert (state["batches_done"], state["epoch_progress"]) == (0, None)
    assert (state["in_channels"], state["image_size"]) == (1, 8)
    assert Hyperparameters.model_validate(state["hyperparameters"]).epochs == 2
    assert [EpochMetrics.model_validate(m) for m in state["metrics"]] == run.recorder.metrics
    assert state["scheduler_state_dict"]["last_epoch"] == 2
    assert state["early_stopping_state_dict"]["epochs_seen"] == 2
    assert (state["best_epoch"], state["best_metric"]) == (run.outcome.best_epoch, run.outcome.best_metric)
    assert isinstance(state["rng_state"]["torch"], torch.Tensor)
    assert len(state["rng_state"]["python"]["state"]) == 625


def test_a_resume_checkpoint_has_the_same_keys_and_loads_with_weights_only(train: Train) -> None:
    run = train(epochs=2, lr_scheduler="onecycle", stop_after_batches=12 + 5)  # 12 batches per epoch

    path = run.outcome.resume_checkpoint
    assert path == run.checkpoint_dir.resolve() / RESUME_FILENAME
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert set(state) == CHECKPOINT_KEYS
    assert (state["format_version"], state["epoch"], state["batches_done"]) == (2, 1, 5)
    assert state["scheduler_state_dict"]["last_epoch"] == 12 + 5  # onecycle steps per batch
    assert [EpochMetrics.model_validate(m) for m in state["metrics"]] == run.recorder.metrics
    progress = state["epoch_progress"]
    assert progress["samples"] == 5 * 128
    assert progress["seconds"] > 0
    # Epoch 2's metrics report the rate of its first batch, not the one reached when it stopped.
    assert progress["learning_rate"] > run.recorder.learning_rates[0]
    assert progress["learning_rate"] != state["optimizer_state_dict"]["param_groups"][0]["lr"]
    assert 0 < progress["loss_sum"].item() / progress["samples"] < 3  # cross-entropy over 10 classes
    assert 0 <= progress["correct"].item() <= progress["samples"]
    assert read_checkpoint(path)["epoch"] == 1


@pytest.mark.parametrize("scheduler", ["plateau", "onecycle", "cosine"])
def test_every_scheduler_state_survives_a_weights_only_load(train: Train, scheduler: str) -> None:
    run = train(epochs=1, lr_scheduler=scheduler)

    state = read_checkpoint(run.recorder.checkpoints[-1].path)

    assert state["scheduler_state_dict"] is not None


def test_load_model_rebuilds_an_eval_mode_model_that_predicts_like_the_trained_one(train: Train) -> None:
    # small_cnn has dropout and BatchNorm, so a model left in train mode would score differently.
    run = train(model="small_cnn", epochs=2)
    path = run.recorder.checkpoints[-1].path

    model = load_model(path)

    assert isinstance(model, nn.Module)
    assert not any(module.training for module in model.modules())
    hp = Hyperparameters(model="small_cnn", batch_size=128)
    data = build_data(hp, Path("/nonexistent"), torch.device("cpu"))
    loss, accuracy = evaluate(
        model,
        data.val,
        device=torch.device("cpu"),
        ranks=ONE_RANK,
        criterion=nn.CrossEntropyLoss(),
        autocast=lambda: torch.autocast("cpu", enabled=False),
    )
    final = run.recorder.metrics[-1]
    assert accuracy == final.val_accuracy
    assert loss == pytest.approx(final.val_loss, rel=1e-6)
    # What inference needs comes with it: the dataset's class names and evaluation transform.
    assert model.class_names == data.info.classes
    assert model.preprocess.transform == data.eval_transform


def test_a_file_that_is_not_a_checkpoint_is_a_checkpoint_error(tmp_path: Path) -> None:
    garbage, foreign = tmp_path / "garbage.pt", tmp_path / "foreign.pt"
    garbage.write_bytes(b"\x00not a zip")
    torch.save({"weights": torch.ones(1)}, foreign)

    with pytest.raises(CheckpointError, match="cannot read") as raised:
        load_model(garbage)
    assert "damaged, or not a PyTorch checkpoint" in str(raised.value)
    assert "\n" not in str(raised.value)
    with pytest.raises(CheckpointError, match="not a trainq checkpoint of format 1 or 2"):
        load_model(foreign)


def test_resuming_from_a_checkpoint_of_another_model_is_a_checkpoint_error(train: Train) -> None:
    cnn = train(model="small_cnn", epochs=1)

    with pytest.raises(CheckpointError, match="does not fit this job") as raised:
        train(model="mlp", epochs=2, resume_from=cnn.recorder.checkpoints[-1].path)
    assert raised.value.reason == "checkpoint_error"


class _Payload:
    """What a hostile checkpoint could carry: unpickling it would create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_load_model_refuses_a_checkpoint_that_would_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "hostile.pt"
    torch.save({"model_state_dict": {}, "payload": _Payload(marker)}, path)

    with pytest.raises(CheckpointError, match="cannot read checkpoint") as raised:
        load_model(path)

    assert not marker.exists()
    # Not torch's advice to retry with weights_only=False, which would run the payload.
    assert "weights_only" not in str(raised.value)
    assert "could run code" in str(raised.value)
