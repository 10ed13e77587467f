"""The best model evaluated per class: a confusion matrix over a split, and the figures drawn from it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.contract import ClassMetrics, EvaluationMetrics

from .distributed import Ranks
from .loaders import Loader
from .runtime import Autocast


@torch.no_grad()
def evaluate_per_class(
    model: nn.Module,
    loader: Loader,
    *,
    epoch: int,
    class_names: Sequence[str],
    device: torch.device,
    autocast: Autocast,
    ranks: Ranks,
) -> EvaluationMetrics:
    """Plain cross-entropy, accuracy and per-class figures of `model` over every rank's shard of `loader`."""
    model.eval()
    num_classes = len(class_names)
    loss_sum = torch.zeros((), device=device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    for images, labels in loader:
        with autocast():
            logits = model(images)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        confusion += torch.bincount(labels * num_classes + logits.argmax(dim=1), minlength=num_classes**2)
    confusion = ranks.sum_(confusion).view(num_classes, num_classes).cpu()
    total = int(confusion.sum())
    loss = float(ranks.sum_(loss_sum)) / max(total, 1)
    return classification_report(confusion, loss=loss, class_names=class_names, epoch=epoch)


def classification_report(
    confusion: Tensor, *, loss: float, class_names: Sequence[str], epoch: int
) -> EvaluationMetrics:
    """Per-class precision, recall, F1 and support from a confusion matrix (rows true, columns
    predicted); a class never predicted (or never present) scores 0 where the ratio is undefined,
    as scikit-learn's zero_division=0 does."""
    confusion = confusion.to(torch.int64)
    hits = confusion.diagonal().double()
    support = confusion.sum(dim=1).double()
    predicted = confusion.sum(dim=0).double()
    precision = torch.where(predicted > 0, hits / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, hits / support.clamp(min=1), 0.0)
    both = precision + recall
    f1 = torch.where(both > 0, 2 * precision * recall / both.clamp(min=1e-12), 0.0)
    total = int(support.sum())
    return EvaluationMetrics(
        epoch=epoch,
        loss=loss,
        accuracy=float(hits.sum()) / total if total else 0.0,
        per_class=[
            ClassMetrics(
                class_name=name,
                precision=float(precision[i]),
                recall=float(recall[i]),
                f1=float(f1[i]),
                support=int(support[i]),
            )
            for i, name in enumerate(class_names)
        ],
        confusion_matrix=confusion.tolist(),
    )
