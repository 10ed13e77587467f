"""init_from's partial load, and freeze_backbone / unfreeze_at_epoch, on real training runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from app.contract import WarmStart
from tests.training.conftest import Run, Train
from worker.training import ConfigError, checkpoint_filename
from worker.training.checkpoint import read_checkpoint
from worker.training.models import build_architecture, head_parameter_names
from worker.training.warm_start import load_warm_start

SOURCE_JOB = "a" * 32
FROM_SOURCE = {"job": SOURCE_JOB, "checkpoint": "best"}
# small_cnn has batch norms, whose running statistics freezing must keep still too.
CNN: dict[str, Any] = {"model": "small_cnn", "epochs": 1}
CNN_HEAD = ["10.bias", "10.weight"]


@pytest.fixture
def source(train: Train) -> Path:
    """A small_cnn trained one epoch on digits (10 classes, 1 channel, 8x8): its checkpoint."""
    run = train(**CNN)
    return run.checkpoint_dir / checkpoint_filename(1)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return dict(read_checkpoint(path)["model_state_dict"])


def final_weights(run: Run, epoch: int) -> dict[str, torch.Tensor]:
    return weights(run.checkpoint_dir / checkpoint_filename(epoch))


def equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: list[str]) -> bool:
    return all(torch.equal(a[key], b[key]) for key in keys)


def test_head_parameter_names_are_the_last_linear_layer_of_every_model() -> None:
    heads = {
        "mlp": {"3.weight", "3.bias"},
        "small_cnn": set(CNN_HEAD),
        "resnet18": {"fc.weight", "fc.bias"},
        "mobilenet_v3_small": {"classifier.3.weight", "classifier.3.bias"},
        "efficientnet_b0": {"classifier.1.weight", "classifier.1.bias"},
    }
    for name, head in heads.items():
        assert head_parameter_names(build_architecture(name, 4, 3, 32)) == head, name


def test_a_warm_start_with_the_same_classes_loads_every_tensor(source: Path) -> None:
    model = build_architecture("small_cnn", 10, 1, 8)
    warm_start = load_warm_start(model, source, model_name="small_cnn", source_job=SOURCE_JOB)
    state = model.state_dict()
    assert warm_start == WarmStart(job=SOURCE_JOB, epoch=1, loaded=len(state), new=[])
    assert equal(state, weights(source), list(state))


def test_a_warm_start_with_another_class_count_keeps_a_fresh_head(source: Path) -> None:
    model = build_architecture("small_cnn", 3, 1, 8)
    fresh = {key: tensor.clone() for key, tensor in model.state_dict().items()}
    warm_start = load_warm_start(model, source, model_name="small_cnn", source_job=SOURCE_JOB)
    state = model.state_dict()
    backbone = [key for key in state if key not in CNN_HEAD]
    assert warm_start == WarmStart(job=SOURCE_JOB, epoch=1, loaded=len(backbone), new=CNN_HEAD)
    assert equal(state, weights(source), backbone)
    assert equal(state, fresh, CNN_HEAD)
    assert state["10.weight"].shape == (3, 64 * 16)


def test_a_source_of_another_model_or_input_shape_is_a_config_error(source: Path) -> None:
    with pytest.raises(ConfigError, match="trained a small_cnn model, and this job's model is mlp"):
        load_warm_start(build_architecture("mlp", 10, 1, 8), source, model_name="mlp", source_job=SOURCE_JOB)
    with pytest.raises(ConfigError, match=r"does not fit .*\(0\.weight differ\)"):
        load_warm_start(
            build_architecture("small_cnn", 10, 3, 8), source, model_name="small_cnn", source_job=SOURCE_JOB
        )


def test_a_run_reports_its_warm_start_and_starts_from_the_source_accuracy(train: Train, source: Path) -> None:
    source_accuracy = read_checkpoint(source)["metrics"][-1]["val_accuracy"]
    run = train(**CNN, init_file=source, init_from=FROM_SOURCE, learning_rate=1e-4)
    [info] = run.recorder.infos
    assert info.warm_start is not None
    assert (info.warm_start.job, info.warm_start.epoch, info.warm_start.new) == (SOURCE_JOB, 1, [])
    assert run.recorder.metrics[0].val_accuracy >= source_accuracy - 0.05


def test_a_frozen_backbone_stays_still_while_the_head_trains(train: Train, source: Path) -> None:
    run = train(**CNN, init_file=source, init_from=FROM_SOURCE, freeze_backbone=True)
    before, after = weights(source), final_weights(run, 1)
    backbone = [key for key in before if key not in CNN_HEAD]
    # Batch norms' running statistics and batch counts included: frozen layers stay in eval mode.
    assert any("running_mean" in key for key in backbone)
    assert equal(before, after, backbone)
    assert not equal(before, after, CNN_HEAD)


def test_the_backbone_trains_from_unfreeze_at_epoch_on(train: Train, source: Path) -> None:
    run = train(
        **{**CNN, "epochs": 2},
        init_file=source,
        init_from=FROM_SOURCE,
        freeze_backbone=True,
        unfreeze_at_epoch=2,
        monitor="val_accuracy",
        checkpoint_every=1,
    )
    start, first, second = weights(source), final_weights(run, 1), final_weights(run, 2)
    conv = ["0.weight", "1.running_mean", "4.weight"]
    assert equal(start, first, conv)
    assert not any(torch.equal(first[key], second[key]) for key in conv)


@pytest.mark.parametrize("stop_after_batches", [5, 17], ids=["frozen", "unfrozen"])
def test_a_run_stopped_before_or_after_the_unfreeze_resumes_bit_identical(
    train: Train, source: Path, stop_after_batches: int
) -> None:
    settings: dict[str, Any] = {
        **CNN,
        "epochs": 3,
        "init_from": FROM_SOURCE,
        "freeze_backbone": True,
        "unfreeze_at_epoch": 2,
    }
    straight = train(**settings, init_file=source)
    stopped = train(**settings, init_file=source, stop_after_batches=stop_after_batches)
    resume_file = stopped.outcome.resume_checkpoint
    assert resume_file is not None
    # As the worker does: a resumed attempt takes everything from its checkpoint, nothing from init_from.
    resumed = train(**settings, resume_from=resume_file, checkpoint_dir=stopped.checkpoint_dir)
    assert resumed.recorder.infos[0].warm_start is None
    final = final_weights(straight, 3)
    assert equal(final, final_weights(resumed, 3), list(final))


def test_a_run_on_other_classes_replaces_the_head_and_learns_them(train: Train, source: Path) -> None:
    # Three classes of 1-channel 8x8 images, like digits' shape: the backbone fits, the head does not.
    run = train(
        **{**CNN, "epochs": 3},
        dataset="fake",
        fake_channels=1,
        fake_num_classes=3,
        fake_samples=300,
        image_size=8,
        batch_size=16,
        init_file=source,
        init_from=FROM_SOURCE,
    )
    [info] = run.recorder.infos
    assert info.warm_start is not None and info.warm_start.new == CNN_HEAD
    assert run.outcome.status == "completed"
    assert max(m.val_accuracy for m in run.recorder.metrics) >= 0.9
