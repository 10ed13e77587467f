"""The training loop: `run_training` drives `train_one_epoch` and `evaluate` epoch by epoch."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from app.hyperparameters import Hyperparameters

from .checkpoint import write_checkpoint
from .early_stopping import is_better
from .errors import NonFiniteLossError
from .events import Callbacks, CheckpointInfo, EpochMetrics, NullCallbacks, RunInfo, TrainingOutcome
from .loaders import Loader
from .optim import LRSchedule
from .runtime import Autocast
from .session import Session, start_session

__all__ = [
    "Callbacks",
    "CheckpointInfo",
    "EpochMetrics",
    "NullCallbacks",
    "RunInfo",
    "TrainingOutcome",
    "evaluate",
    "run_training",
    "train_one_epoch",
]

logger = logging.getLogger(__name__)

STOP_REQUESTED = "stop requested"


@dataclass(frozen=True)
class EpochStats:
    loss: float
    accuracy: float
    samples: int
    seconds: float


def train_one_epoch(
    model: nn.Module,
    loader: Loader,
    *,
    device: torch.device,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    scaler: torch.amp.GradScaler,
    autocast: Autocast,
    schedule: LRSchedule,
    grad_clip_norm: float | None,
    on_batch: Callable[[int], bool],
) -> EpochStats | None:
    """One pass over `loader`; None when `on_batch(batches_done)` asks to stop before the last batch.

    Loss and accuracy accumulate on the device and are read once at the end, so the
    GPU never waits for the host in the middle of an epoch.
    """
    model.train()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples = 0
    num_batches = len(loader)
    for index, (images, labels) in enumerate(loader):
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits = model(images)
            loss = criterion(logits, labels)
        scaler.scale(loss).backward()
        if grad_clip_norm is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
        scaler.step(optimizer)
        scaler.update()
        schedule.after_batch()
        batch_size = labels.shape[0]
        loss_sum += loss.detach().float() * batch_size
        correct += (logits.detach().argmax(dim=1) == labels).sum()
        samples += batch_size
        if on_batch(index + 1) and index + 1 < num_batches:
            return None
    total_loss, total_correct = loss_sum.item(), correct.item()
    seconds = time.perf_counter() - start
    return EpochStats(total_loss / samples, total_correct / samples, samples, seconds)


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Loader, *, device: torch.device, criterion: nn.Module, autocast: Autocast
) -> tuple[float, float]:
    """(mean loss, accuracy) over `loader` in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples = 0
    for images, labels in loader:
        with autocast():
            logits = model(images)
            loss = criterion(logits, labels)
        loss_sum += loss.float() * labels.shape[0]
        correct += (logits.argmax(dim=1) == labels).sum()
        samples += labels.shape[0]
    return loss_sum.item() / samples, correct.item() / samples


def _progress_hook(
    callbacks: Callbacks, should_stop: Callable[[], bool], epoch: int, done_before: int, total: int
) -> Callable[[int], bool]:
    def on_batch(done: int) -> bool:
        callbacks.on_progress(epoch, (done_before + done) / total)
        return should_stop()

    return on_batch


def _save(session: Session, checkpoint_dir: Path, epoch: int, is_best: bool) -> CheckpointInfo:
    path, size, sha256 = write_checkpoint(session.state_dict(epoch), checkpoint_dir, epoch)
    logger.info("epoch %d: checkpoint %s (%d bytes%s)", epoch, path, size, ", best" if is_best else "")
    return CheckpointInfo(epoch=epoch, path=path, size_bytes=size, sha256=sha256, is_best=is_best)


def run_training(
    hp: Hyperparameters,
    *,
    data_dir: Path,
    checkpoint_dir: Path,
    callbacks: Callbacks,
    resume_from: Path | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainingOutcome:
    """Train as `hp` says, reporting through `callbacks`; resume from a checkpoint when given.

    A checkpoint is written after epoch e when e is a multiple of checkpoint_every,
    a new best of hp.monitor (strictly better, min_delta is for early stopping
    only), or the last epoch that will run. `should_stop` is polled after every
    batch: a stop mid-epoch drops that partial epoch (it cannot be resumed exactly)
    and writes nothing, so a resumed run redoes it from the latest checkpoint; a
    stop seen after an epoch's last batch lets that epoch finish and checkpoint.
    """
    session = start_session(hp, data_dir=Path(data_dir), resume_from=resume_from)
    data, model, device = session.data, session.model, session.device
    batches = len(data.train)
    callbacks.on_start(
        RunInfo(
            device=str(device),
            precision=session.precision,
            num_classes=data.num_classes,
            train_samples=data.train_samples,
            val_samples=data.val_samples,
            batches_per_epoch=batches,
            start_epoch=session.start_epoch,
        )
    )
    train_criterion = nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
    # Validation loss is plain cross-entropy so it stays comparable across label_smoothing values.
    val_criterion = nn.CrossEntropyLoss()
    epoch = session.start_epoch - 1
    for epoch in range(session.start_epoch, hp.epochs + 1):
        learning_rate = session.schedule.lr
        data.train.set_epoch(epoch)
        epoch_start = time.perf_counter()
        stats = train_one_epoch(
            model,
            data.train,
            device=device,
            optimizer=session.optimizer,
            criterion=train_criterion,
            scaler=session.scaler,
            autocast=session.autocast,
            schedule=session.schedule,
            grad_clip_norm=hp.grad_clip_norm,
            on_batch=_progress_hook(
                callbacks, should_stop, epoch, (epoch - 1) * batches, hp.epochs * batches
            ),
        )
        if stats is None:
            logger.info("stop requested during epoch %d; its partial progress is dropped", epoch)
            return TrainingOutcome(
                "interrupted", epoch - 1, STOP_REQUESTED, session.best_epoch, session.best_metric
            )
        val_loss, val_accuracy = evaluate(
            model, data.val, device=device, criterion=val_criterion, autocast=session.autocast
        )
        duration = time.perf_counter() - epoch_start
        if not (math.isfinite(stats.loss) and math.isfinite(val_loss)):
            raise NonFiniteLossError(
                f"epoch {epoch}: the loss became non-finite (train {stats.loss}, validation {val_loss}); "
                "lower learning_rate or set grad_clip_norm (e.g. 1.0)"
            )
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=stats.loss,
            train_accuracy=stats.accuracy,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            learning_rate=learning_rate,
            duration_seconds=duration,
            samples_per_second=stats.samples / stats.seconds if stats.seconds > 0 else 0.0,
        )
        session.history.append(metrics)
        logger.info(
            "epoch %d/%d: train_loss=%.4f train_acc=%.4f val_loss=%.4f val_acc=%.4f lr=%.3g %.1fs",
            epoch, hp.epochs, stats.loss, stats.accuracy, val_loss, val_accuracy, learning_rate, duration,
        )  # fmt: skip
        callbacks.on_epoch_end(metrics)

        monitored = val_loss if hp.monitor == "val_loss" else val_accuracy
        session.schedule.after_epoch(monitored)
        is_best = is_better(monitored, session.best_metric, session.mode)
        if is_best:
            session.best_metric, session.best_epoch = monitored, epoch
        reason = session.early_stopping.step(monitored)
        stop_requested = reason is None and should_stop()
        is_last = epoch == hp.epochs or reason is not None or stop_requested
        if is_best or is_last or epoch % hp.checkpoint_every == 0:
            callbacks.on_checkpoint(_save(session, checkpoint_dir, epoch, is_best))
        if reason is not None:
            logger.info("early stopping after epoch %d: %s", epoch, reason)
            return TrainingOutcome("early_stopped", epoch, reason, session.best_epoch, session.best_metric)
        if stop_requested:
            logger.info("stop requested after epoch %d", epoch)
            return TrainingOutcome(
                "interrupted", epoch, STOP_REQUESTED, session.best_epoch, session.best_metric
            )
    return TrainingOutcome("completed", epoch, None, session.best_epoch, session.best_metric)
