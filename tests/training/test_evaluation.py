"""Per-class evaluation: the confusion matrix and the figures drawn from it, checked against scikit-learn."""

from __future__ import annotations

import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from torch import nn

from worker.training.distributed import ONE_RANK
from worker.training.evaluation import classification_report, evaluate_per_class
from worker.training.loaders import TensorLoader
from worker.training.runtime import autocast_factory

NAMES = ["cat", "dog", "emu", "yak"]


def test_the_report_matches_scikit_learn_including_classes_never_predicted_or_present() -> None:
    truth = [0, 0, 1, 1, 1, 2, 2, 0, 1, 2]
    guess = [0, 1, 1, 1, 0, 0, 2, 0, 1, 0]  # "yak" (3) is neither present nor predicted
    matrix = torch.as_tensor(confusion_matrix(truth, guess, labels=range(4)))
    report = classification_report(matrix, loss=0.7, class_names=NAMES, epoch=5)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, guess, labels=range(4), zero_division=0
    )
    assert [c.class_name for c in report.per_class] == NAMES
    assert [c.precision for c in report.per_class] == list(precision)
    assert [c.recall for c in report.per_class] == list(recall)
    assert [round(c.f1, 12) for c in report.per_class] == [round(x, 12) for x in f1]
    assert [c.support for c in report.per_class] == list(support)
    assert report.accuracy == 0.6 and report.epoch == 5 and report.loss == 0.7
    assert report.confusion_matrix == matrix.tolist()


def test_evaluating_a_model_counts_every_sample_once_in_its_true_row() -> None:
    torch.manual_seed(0)
    images = torch.rand(37, 1, 4, 4)
    labels = torch.randint(0, 4, (37,))
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    loader = TensorLoader(images, labels, batch_size=8, device=torch.device("cpu"), shuffle=False)
    report = evaluate_per_class(
        model,
        loader,
        epoch=1,
        class_names=NAMES,
        device=torch.device("cpu"),
        autocast=autocast_factory(torch.device("cpu"), "fp32"),
        ranks=ONE_RANK,
    )
    with torch.no_grad():
        logits = model(images)
    expected = confusion_matrix(labels, logits.argmax(1), labels=range(4))
    assert report.confusion_matrix == expected.tolist()
    assert sum(map(sum, report.confusion_matrix)) == 37
    assert abs(report.loss - nn.functional.cross_entropy(logits, labels).item()) < 1e-5
