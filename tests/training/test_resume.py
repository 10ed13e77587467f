"""A stop mid-epoch writes resume.pt; a run resumed from it ends bit for bit like an uninterrupted one."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests.training.conftest import Run, Train
from worker.training import RESUME_FILENAME, CheckpointError, checkpoint_filename
from worker.training.checkpoint import read_checkpoint

# train() counts the batches of each run from that run's start.
DIGITS_BATCHES = 12  # 1438 training digits in batches of 128
# Bit for bit is promised on the CPU only: GPU kernels need not add up in a fixed order.
CPU = {"device": "cpu"}
COMPARED_METRICS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate")


def _final_state(run: Run, epochs: int) -> dict[str, Any]:
    return read_checkpoint(run.checkpoint_dir / checkpoint_filename(epochs))


def _assert_resumed_like_straight(straight: Run, resumed: Run, *, from_epoch: int, epochs: int) -> None:
    """Same final weights and optimizer, and the same metrics for every epoch the resumed run reported."""
    expected, actual = _final_state(straight, epochs), _final_state(resumed, epochs)
    for name, tensor in expected["model_state_dict"].items():
        assert torch.equal(tensor, actual["model_state_dict"][name]), name
    assert actual["optimizer_state_dict"]["param_groups"] == expected["optimizer_state_dict"]["param_groups"]
    assert actual["scheduler_state_dict"] == expected["scheduler_state_dict"]
    assert [m.epoch for m in resumed.recorder.metrics] == list(range(from_epoch, epochs + 1))
    for got, want in zip(resumed.recorder.metrics, straight.recorder.metrics[from_epoch - 1 :], strict=True):
        assert [getattr(got, k) for k in COMPARED_METRICS] == [getattr(want, k) for k in COMPARED_METRICS]
        assert got.duration_seconds > 0 and got.samples_per_second > 0


def _resume(train: Train, stopped: Run, **settings: Any) -> Run:
    assert stopped.outcome.resume_checkpoint is not None
    return train(
        **settings, checkpoint_dir=stopped.checkpoint_dir, resume_from=stopped.outcome.resume_checkpoint
    )


@pytest.mark.parametrize("lr_scheduler", ["none", "onecycle"])
def test_a_run_stopped_mid_epoch_and_resumed_ends_bit_identical_to_an_uninterrupted_run(
    train: Train, lr_scheduler: str
) -> None:
    # small_cnn's dropout draws from the global RNG every batch and onecycle steps every
    # batch: both must pick up at the very batch where the stop came.
    settings = {**CPU, "model": "small_cnn", "epochs": 3, "batch_size": 128, "lr_scheduler": lr_scheduler}
    straight = train(**settings)
    assert straight.recorder.infos[0].batches_per_epoch == DIGITS_BATCHES

    stopped = train(**settings, checkpoint_every=5, stop_after_batches=DIGITS_BATCHES + 4)

    resume_file = stopped.checkpoint_dir.resolve() / RESUME_FILENAME
    assert (stopped.outcome.status, stopped.outcome.epochs_completed) == ("interrupted", 1)
    assert stopped.outcome.resume_checkpoint == resume_file
    assert resume_file.is_file()
    assert [c.epoch for c in stopped.recorder.checkpoints] == [1]  # resume.pt is not a listed checkpoint
    assert stopped.checkpoint_files() == [checkpoint_filename(1), RESUME_FILENAME]
    assert [m.epoch for m in stopped.recorder.metrics] == [1]

    resumed = _resume(train, stopped, **settings)

    assert resumed.outcome.status == "completed"
    assert resumed.recorder.infos[0].start_epoch == 2
    # Progress picks up at epoch 2's fifth batch: together the two runs report what one would.
    assert stopped.recorder.progress + resumed.recorder.progress == straight.recorder.progress
    _assert_resumed_like_straight(straight, resumed, from_epoch=2, epochs=3)


def test_a_run_stopped_twice_in_the_same_epoch_still_ends_bit_identical(train: Train) -> None:
    settings = {**CPU, "epochs": 2, "label_smoothing": 0.1}
    straight = train(**settings)

    first = train(**settings, stop_after_batches=3)
    second = _resume(train, first, **settings, stop_after_batches=4)
    assert second.outcome.resume_checkpoint == first.outcome.resume_checkpoint  # replaced in place
    assert read_checkpoint(second.checkpoint_dir / RESUME_FILENAME)["batches_done"] == 7
    resumed = _resume(train, second, **settings)

    assert [info.start_epoch for info in (second.recorder.infos + resumed.recorder.infos)] == [1, 1]
    _assert_resumed_like_straight(straight, resumed, from_epoch=1, epochs=2)


def _write_noise_images(folder: Path, per_class: int) -> None:
    rng = np.random.default_rng(0)
    for label, channel in (("red", 0), ("blue", 2)):
        (folder / label).mkdir(parents=True)
        for number in range(per_class):
            pixels = rng.integers(0, 128, size=(8, 8, 3), dtype=np.uint8)
            pixels[..., channel] += 100  # the class signal under the noise
            Image.fromarray(pixels).save(folder / label / f"{number}.png")


# Random crops and flips (and RandAugment) drawn in DataLoader workers: after a resume, batch b
# goes to another worker than it did, so each sample's draws must not depend on the worker.
@pytest.mark.parametrize(("augment", "num_workers"), [("none", 0), ("light", 0), ("standard", 2)])
def test_an_imagefolder_run_stopped_mid_epoch_resumes_bit_identical(
    train: Train, tmp_path: Path, augment: str, num_workers: int
) -> None:
    _write_noise_images(tmp_path / "data" / "colours", per_class=20)  # 32 train, 8 val: 4 batches of 8
    settings = {
        **CPU,
        "dataset": "imagefolder",
        "dataset_path": "colours",
        "augment": augment,
        "num_workers": num_workers,
        "model": "small_cnn",
        "image_size": 8,
        "batch_size": 8,
        "epochs": 2,
    }
    straight = train(**settings)
    assert straight.recorder.infos[0].batches_per_epoch == 4

    stopped = train(**settings, stop_after_batches=4 + 2)
    resumed = _resume(train, stopped, **settings)

    assert resumed.recorder.infos[0].start_epoch == 2
    assert stopped.recorder.progress + resumed.recorder.progress == straight.recorder.progress
    _assert_resumed_like_straight(straight, resumed, from_epoch=2, epochs=2)


def test_a_stop_before_the_first_batch_writes_nothing(train: Train) -> None:
    run = train(should_stop=lambda: True)

    assert (run.outcome.status, run.outcome.epochs_completed) == ("interrupted", 0)
    assert run.outcome.resume_checkpoint is None
    assert run.checkpoint_files() == []
    assert (run.recorder.progress, run.recorder.metrics) == ([], [])

    # Nor does one right after resuming: the resume file it came from stays as it was, and current.
    stopped = train(stop_after_batches=12 + 3)
    assert stopped.outcome.resume_checkpoint is not None
    sha256 = hashlib.sha256(stopped.outcome.resume_checkpoint.read_bytes()).hexdigest()
    again = train(
        checkpoint_dir=stopped.checkpoint_dir,
        resume_from=stopped.outcome.resume_checkpoint,
        should_stop=lambda: True,
    )
    assert (again.outcome.epochs_completed, again.outcome.resume_checkpoint) == (1, None)
    assert again.recorder.infos[0].start_epoch == 2
    assert hashlib.sha256(stopped.outcome.resume_checkpoint.read_bytes()).hexdigest() == sha256


def test_a_resume_checkpoint_that_skips_a_whole_epoch_does_not_fit_the_job(
    train: Train, tmp_path: Path
) -> None:
    stopped = train(stop_after_batches=3)
    assert stopped.outcome.resume_checkpoint is not None
    state = read_checkpoint(stopped.outcome.resume_checkpoint)
    state["batches_done"] = 12  # as many as the epoch has: nothing would be left to continue
    torch.save(state, tmp_path / "bad.pt")

    with pytest.raises(CheckpointError, match=r"does not fit this job.*batch 12 of an epoch of 12"):
        train(resume_from=tmp_path / "bad.pt")


def test_a_format_1_epoch_checkpoint_still_resumes(train: Train, tmp_path: Path) -> None:
    first = train(stop_after_batches=12)
    state = read_checkpoint(first.checkpoint_dir / checkpoint_filename(1))
    del state["batches_done"], state["epoch_progress"]
    torch.save({**state, "format_version": 1}, tmp_path / "old.pt")

    resumed = train(resume_from=tmp_path / "old.pt")

    assert resumed.recorder.infos[0].start_epoch == 2
    assert resumed.outcome.status == "completed"
