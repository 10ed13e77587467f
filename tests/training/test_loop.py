from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from app.hyperparameters import Hyperparameters
from tests.training.conftest import Recorder
from worker.training import ConfigError, NonFiniteLossError, NullCallbacks, checkpoint_filename, run_training
from worker.training.checkpoint import read_checkpoint

Train = Callable[..., Any]  # the `train` fixture from conftest.py
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def test_small_cnn_with_default_hyperparameters_reaches_95_percent_on_digits_within_10_epochs(
    train: Train, record_property: Callable[[str, object], None]
) -> None:
    started = time.perf_counter()
    run = train(model="small_cnn", epochs=10, batch_size=64)
    seconds = time.perf_counter() - started

    accuracies = [m.val_accuracy for m in run.recorder.metrics]
    record_property("val_accuracy_per_epoch", accuracies)  # shown in the JUnit XML report
    record_property("seconds", round(seconds, 2))
    assert max(accuracies) >= 0.95, (
        f"best val accuracy {max(accuracies):.4f} after 10 epochs ({seconds:.1f}s)"
    )
    assert run.outcome.status == "completed"
    assert run.outcome.epochs_completed == 10


def test_run_reports_start_progress_and_each_epoch_with_its_checkpoint_in_order(train: Train) -> None:
    run = train(epochs=3)

    recorder = run.recorder
    assert recorder.events == [
        "start", "epoch 1 with checkpoint", "epoch 2 with checkpoint", "epoch 3 with checkpoint",
    ]  # fmt: skip
    info = recorder.infos[0]
    assert (info.device, info.precision, info.num_classes, info.start_epoch) == ("cpu", "fp32", 10, 1)
    assert info.train_samples + info.val_samples == 1797
    assert info.batches_per_epoch == -(-info.train_samples // 128)
    assert [m.epoch for m in recorder.metrics] == [1, 2, 3]
    assert len(recorder.progress) == 3 * info.batches_per_epoch
    fractions = [fraction for _, fraction in recorder.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == pytest.approx(1.0)
    assert recorder.progress[info.batches_per_epoch] == (
        2,
        pytest.approx((info.batches_per_epoch + 1) / 3 / info.batches_per_epoch),
    )
    assert all(m.duration_seconds > 0 and m.samples_per_second > 0 for m in recorder.metrics)
    assert recorder.metrics[-1].val_accuracy > 0.8
    assert run.outcome.best_epoch is not None
    assert run.outcome.best_metric == min(m.val_loss for m in recorder.metrics)


def test_step_scheduler_decays_the_learning_rate_every_step_size_epochs(train: Train) -> None:
    run = train(epochs=5, lr_scheduler="step", step_size=2, gamma=0.1, learning_rate=0.01)

    assert run.recorder.learning_rates == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4])


def test_cosine_scheduler_anneals_to_the_minimum_learning_rate(train: Train) -> None:
    run = train(epochs=4, lr_scheduler="cosine", learning_rate=0.01, min_learning_rate=0.001)

    rates = run.recorder.learning_rates
    assert rates[0] == pytest.approx(0.01)
    assert rates == sorted(rates, reverse=True)
    final = read_checkpoint(run.checkpoint_dir / checkpoint_filename(4))
    assert final["optimizer_state_dict"]["param_groups"][0]["lr"] == pytest.approx(0.001)


def test_onecycle_scheduler_steps_after_every_batch(train: Train) -> None:
    run = train(epochs=2, lr_scheduler="onecycle", learning_rate=0.01)

    batches = run.recorder.infos[0].batches_per_epoch
    state = read_checkpoint(run.checkpoint_dir / checkpoint_filename(2))["scheduler_state_dict"]
    assert state["last_epoch"] == 2 * batches
    first, second = run.recorder.learning_rates
    assert first == pytest.approx(0.01 / 25)  # OneCycleLR starts at max_lr / div_factor
    assert second > first


def test_plateau_scheduler_reduces_the_learning_rate_when_the_metric_stalls(train: Train) -> None:
    # A learning rate this small cannot move the validation loss past the plateau threshold.
    run = train(
        epochs=4, optimizer="sgd", learning_rate=1e-7, lr_scheduler="plateau", plateau_patience=0, gamma=0.5
    )

    assert run.recorder.learning_rates == pytest.approx([1e-7, 1e-7, 5e-8, 2.5e-8])


def test_early_stopping_ends_the_run_with_a_reason_and_a_final_checkpoint(train: Train) -> None:
    # No epoch can lower the validation loss by 10, so every epoch after the first counts as stale.
    run = train(epochs=10, early_stopping_patience=2, early_stopping_min_delta=10.0, checkpoint_every=5)

    assert run.outcome.status == "early_stopped"
    assert run.outcome.epochs_completed == 3
    assert run.outcome.stop_reason is not None
    assert "val_loss did not improve by more than 10 for 2 epochs" in run.outcome.stop_reason
    assert len(run.recorder.metrics) == 3
    assert checkpoint_filename(3) in run.checkpoint_files()


def test_checkpoints_are_written_every_n_epochs_on_a_new_best_and_after_the_last_epoch(train: Train) -> None:
    # Accuracy stays at the same value with a learning rate this small, so only epoch 1 is a best.
    run = train(epochs=5, checkpoint_every=2, monitor="val_accuracy", optimizer="sgd", learning_rate=1e-9)

    saved = [(c.epoch, c.is_best) for c in run.recorder.checkpoints]
    assert saved == [(1, True), (2, False), (4, False), (5, False)]
    # Beside them, the best epoch's default export.
    assert run.checkpoint_files() == [checkpoint_filename(e) for e in (1, 2, 4, 5)] + ["model.safetensors"]
    assert (run.outcome.best_epoch, run.outcome.status) == (1, "completed")
    assert [(e.name, e.path.parent) for e in run.outcome.exports] == [
        ("model.safetensors", run.checkpoint_dir)
    ]


def test_non_finite_loss_raises_and_writes_no_checkpoint_for_that_epoch(train: Train, tmp_path: Path) -> None:
    checkpoint_dir = tmp_path / "diverged"

    # Weight decay 1 at learning rate 10 multiplies every weight by -9 per step: overflow within an epoch.
    with pytest.raises(NonFiniteLossError, match=r"epoch 1: .*lower learning_rate") as raised:
        train(
            checkpoint_dir=checkpoint_dir,
            batch_size=32,
            optimizer="sgd",
            momentum=0.0,
            learning_rate=10.0,
            weight_decay=1.0,
        )

    assert raised.value.reason == "nan_loss"
    assert not checkpoint_dir.exists() or not any(checkpoint_dir.iterdir())


def test_stop_requested_during_the_last_batch_finishes_and_checkpoints_that_epoch(train: Train) -> None:
    # checkpoint_every=5 would skip epoch 1: a stopped run still leaves its latest completed epoch.
    run = train(epochs=3, checkpoint_every=5, stop_after_batches=12)

    assert run.recorder.infos[0].batches_per_epoch == 12
    assert (run.outcome.status, run.outcome.epochs_completed) == ("interrupted", 1)
    assert run.outcome.resume_checkpoint is None
    assert [c.epoch for c in run.recorder.checkpoints] == [1]
    assert run.checkpoint_files() == [checkpoint_filename(1)]


def test_a_stop_seen_at_the_last_batch_of_an_epoch_is_not_forgotten_at_its_end(train: Train) -> None:
    polls = 0

    def stop_once_at_the_last_batch_of_epoch_one() -> bool:
        nonlocal polls
        polls += 1
        return polls == 1 + 12  # the poll before the first batch, then one per batch

    run = train(epochs=3, checkpoint_every=5, should_stop=stop_once_at_the_last_batch_of_epoch_one)

    assert (run.outcome.status, run.outcome.epochs_completed) == ("interrupted", 1)
    assert run.checkpoint_files() == [checkpoint_filename(1)]


def test_resumed_run_ends_bit_identical_to_an_uninterrupted_run(train: Train, tmp_path: Path) -> None:
    # small_cnn has dropout and BatchNorm, the data is reshuffled each epoch and the
    # cosine schedule and Adam carry state: all of it must survive the checkpoint.
    settings = {
        "model": "small_cnn",
        "epochs": 4,
        "batch_size": 256,
        "lr_scheduler": "cosine",
        "checkpoint_every": 3,
    }
    straight = train(**settings)

    stopped = train(**settings, stop_after_batches=2 * 6)  # the last batch of epoch 2
    assert (stopped.outcome.status, stopped.outcome.epochs_completed) == ("interrupted", 2)
    assert stopped.outcome.resume_checkpoint is None

    resumed = train(
        **settings,
        checkpoint_dir=stopped.checkpoint_dir,
        resume_from=stopped.checkpoint_dir / checkpoint_filename(2),
    )

    assert resumed.recorder.infos[0].start_epoch == 3
    assert [m.epoch for m in resumed.recorder.metrics] == [3, 4]
    expected = read_checkpoint(straight.checkpoint_dir / checkpoint_filename(4))
    actual = read_checkpoint(resumed.checkpoint_dir / checkpoint_filename(4))
    for name, tensor in expected["model_state_dict"].items():
        assert torch.equal(tensor, actual["model_state_dict"][name]), name
    assert [m["val_loss"] for m in actual["metrics"]] == [m["val_loss"] for m in expected["metrics"]]
    assert actual["optimizer_state_dict"]["param_groups"] == expected["optimizer_state_dict"]["param_groups"]


def test_bf16_autocast_runs_on_the_cpu_and_is_reported(train: Train) -> None:
    run = train(model="small_cnn", epochs=1, amp="bf16", device="cpu")

    assert run.recorder.infos[0].precision == "bf16"
    assert run.outcome.status == "completed"
    assert run.recorder.metrics[0].val_accuracy > 0.5


@no_cuda
def test_fp16_without_cuda_is_a_config_error(tmp_path: Path) -> None:
    hp = Hyperparameters(dataset="digits", amp="fp16", device="auto")

    with pytest.raises(ConfigError, match=r"fp16.* needs CUDA; use bf16 on CPU") as raised:
        run_training(hp, data_dir=tmp_path, checkpoint_dir=tmp_path / "ck", callbacks=NullCallbacks())
    assert raised.value.reason == "invalid_config"


@no_cuda
def test_cuda_device_without_cuda_is_a_config_error(tmp_path: Path) -> None:
    hp = Hyperparameters(dataset="digits", device="cuda")

    with pytest.raises(ConfigError, match="cuda"):
        run_training(hp, data_dir=tmp_path, checkpoint_dir=tmp_path / "ck", callbacks=NullCallbacks())
    assert not (tmp_path / "ck").exists()


def test_a_torchvision_model_trains_on_fake_data(train: Train) -> None:
    run = train(
        dataset="fake", model="mobilenet_v3_small", fake_samples=60, image_size=16, batch_size=16, epochs=1
    )

    info = run.recorder.infos[0]
    assert (info.num_classes, info.train_samples, info.val_samples) == (10, 48, 12)
    assert run.outcome.status == "completed"


def test_an_export_this_worker_cannot_write_fails_the_run_before_its_first_epoch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # as on a worker without trainq[export]
    recorder = Recorder()
    with pytest.raises(ConfigError, match=r'the "onnx" export needs the onnx package'):
        run_training(
            Hyperparameters(dataset="digits", model="mlp", epochs=1, export=["safetensors", "onnx"]),
            data_dir=Path("/nonexistent"),
            checkpoint_dir=Path("/nonexistent/checkpoints"),
            callbacks=recorder,
        )
    assert recorder.events == []
