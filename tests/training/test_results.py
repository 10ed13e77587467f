"""What a run that ends by itself reports: its best epoch's model evaluated per class, on the
validation split and on the test split when the dataset has one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tests.support.images import make_image_folder
from worker.training import checkpoint_filename

Train = Callable[..., Any]  # the `train` fixture from conftest.py


def test_the_best_epoch_not_the_last_is_evaluated_per_class_on_validation(train: Train) -> None:
    # A learning rate this high makes later epochs worse than an early one.
    run = train(epochs=4, learning_rate=1.0, optimizer="sgd")
    outcome = run.outcome
    best = outcome.best_epoch
    assert best is not None and best < 4
    assert outcome.val_metrics is not None and outcome.test_metrics is None
    assert outcome.val_metrics.epoch == best
    # The evaluation is the best epoch's own validation pass again, per class.
    best_row = next(m for m in run.recorder.metrics if m.epoch == best)
    assert abs(outcome.val_metrics.loss - best_row.val_loss) < 1e-4
    assert abs(outcome.val_metrics.accuracy - best_row.val_accuracy) < 1e-6
    assert [c.class_name for c in outcome.val_metrics.per_class] == [str(d) for d in range(10)]
    matrix = torch.tensor(outcome.val_metrics.confusion_matrix)
    assert int(matrix.sum()) == run.recorder.infos[0].val_samples
    assert [c.support for c in outcome.val_metrics.per_class] == matrix.sum(dim=1).tolist()


def test_an_image_folder_with_a_test_split_is_scored_on_it(train: Train, tmp_path: Path) -> None:
    make_image_folder(tmp_path / "data" / "shapes", per_class=10, size=24)
    run = train(
        dataset="imagefolder", dataset_path="shapes", image_size=24, epochs=3, batch_size=8, augment="none"
    )
    info = run.recorder.infos[0].dataset
    assert info is not None and info.classes == ["circle", "square", "triangle"]
    assert (info.layout, info.test_samples) == ("split_folders", 30)
    test = run.outcome.test_metrics
    assert test is not None and test.epoch == run.outcome.best_epoch
    assert sum(map(sum, test.confusion_matrix)) == 30
    assert [c.support for c in test.per_class] == [10, 10, 10]
    assert test.accuracy >= 0.9


def test_a_resumed_run_evaluates_the_best_epoch_an_earlier_attempt_wrote(
    train: Train, tmp_path: Path
) -> None:
    job_dir = tmp_path / "job"
    first = train(epochs=3, checkpoint_dir=job_dir / "attempt-1", learning_rate=1.0, optimizer="sgd")
    assert first.outcome.best_epoch == 2  # so the resume file of epoch 3 holds other weights
    resumed = train(
        epochs=4,
        checkpoint_dir=job_dir / "attempt-2",
        resume_from=job_dir / "attempt-1" / checkpoint_filename(3),
        learning_rate=1.0,
        optimizer="sgd",
    )
    outcome = resumed.outcome
    assert outcome.val_metrics is not None
    assert outcome.val_metrics.epoch == outcome.best_epoch == 2
    rows = {m.epoch: m for m in first.recorder.metrics + resumed.recorder.metrics}
    assert abs(outcome.val_metrics.loss - rows[outcome.best_epoch].val_loss) < 1e-4
