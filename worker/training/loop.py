"""The training loop: `run_training` drives `train_one_epoch` and `evaluate` epoch by epoch."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from app.hyperparameters import Hyperparameters

from .checkpoint import write_checkpoint, write_resume_checkpoint
from .distributed import ONE_RANK, Ranks
from .early_stopping import is_better
from .epoch import EpochProgress, evaluate
from .errors import NonFiniteLossError
from .finish import evaluate_best
from .reports import Callbacks, CheckpointInfo, EpochMetrics, RunInfo, TrainingOutcome
from .session import Session, start_session

logger = logging.getLogger(__name__)

STOP_REQUESTED = "stop requested"


@dataclass
class _BatchHook:
    """Reports progress after every batch and polls for a stop, which it remembers once seen.

    Remembering matters at an epoch's last batch: the epoch still finishes, and its end
    must not depend on `should_stop` answering True a second time.
    """

    callbacks: Callbacks
    should_stop: Callable[[], bool]
    batches_per_epoch: int
    total_batches: int
    epoch: int = 0
    stop_seen: bool = False
    first_batch_logged: bool = False

    def __call__(self, done: int) -> bool:
        if not self.first_batch_logged:
            # Wall-clock time, so that start-up cost can be measured against the claim (bench/start_cost.py).
            logger.info("first training batch done at unix time %.3f", time.time())
            self.first_batch_logged = True
        done_before = (self.epoch - 1) * self.batches_per_epoch
        self.callbacks.on_progress(self.epoch, (done_before + done) / self.total_batches)
        self.stop_seen = self.stop_seen or self.should_stop()
        return self.stop_seen


def _save(session: Session, checkpoint_dir: Path, epoch: int, is_best: bool) -> CheckpointInfo | None:
    """Rank 0 writes the checkpoint (None on other ranks); every rank goes on once it is written."""
    state = session.state_dict(epoch)
    info = None
    if session.ranks.is_main:
        path, size, sha256 = write_checkpoint(state, checkpoint_dir, epoch)
        logger.info("epoch %d: checkpoint %s (%d bytes%s)", epoch, path, size, ", best" if is_best else "")
        info = CheckpointInfo(epoch=epoch, path=path, size_bytes=size, sha256=sha256, is_best=is_best)
    session.ranks.barrier()
    return info


def _save_resume(session: Session, checkpoint_dir: Path, epoch: int, progress: EpochProgress) -> Path | None:
    """Rank 0 writes the resume checkpoint (None on other ranks), as _save does."""
    state = session.state_dict(epoch - 1, progress)
    path = None
    if session.ranks.is_main:
        path, size, _ = write_resume_checkpoint(state, checkpoint_dir)
        logger.info(
            "stop requested in epoch %d after batch %d of %d: resume checkpoint %s (%d bytes)",
            epoch, progress.batches_done, len(session.data.train), path, size,
        )  # fmt: skip
    session.ranks.barrier()
    return path


def _interrupted(session: Session, epochs_completed: int, resume: Path | None = None) -> TrainingOutcome:
    return TrainingOutcome(
        "interrupted", epochs_completed, STOP_REQUESTED, session.best_epoch, session.best_metric, resume
    )


def run_training(
    hp: Hyperparameters,
    *,
    data_dir: Path,
    checkpoint_dir: Path,
    callbacks: Callbacks,
    resume_from: Path | None = None,
    init_from: Path | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    ranks: Ranks = ONE_RANK,
) -> TrainingOutcome:
    """Train as `hp` says, reporting through `callbacks`; resume from a checkpoint when given.

    A checkpoint is written after epoch e when e is a multiple of checkpoint_every,
    a new best of hp.monitor (strictly better, min_delta is for early stopping
    only), or the last epoch that will run. `should_stop` is polled once before the
    first batch (a stop then writes nothing) and after every batch. A stop seen
    after an epoch's last batch lets that epoch finish and checkpoint, whatever
    checkpoint_every says. A stop seen mid-epoch writes checkpoint_dir/resume.pt,
    returned as the outcome's resume_checkpoint and never reported through
    on_epoch_end: `resume_from` it, and the run goes on from the next batch of
    that epoch, ending bit for bit where an uninterrupted run would on the CPU.
    `resume_from` accepts either kind of file; which one is current is the caller's
    to know, as the next epoch checkpoint makes a resume file stale. `init_from`: the checkpoint
    file hp.init_from names, whose weights a run that does not resume starts from.

    In a multi-device run every rank calls this with its `ranks`: the metrics are all
    ranks' together, rank 0 alone writes checkpoints (the others see None), and a stop
    that `should_stop` tells any rank stops all of them at the same batch.
    """
    session = start_session(
        hp, data_dir=Path(data_dir), resume_from=resume_from, init_from=init_from, ranks=ranks
    )
    if ranks.distributed:
        asked = should_stop
        should_stop = lambda: ranks.any(asked())  # noqa: E731
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
            dataset=data.info,
            warm_start=session.warm_start,
        )
    )
    if should_stop():
        logger.info("stop requested before the first batch; nothing to save")
        return _interrupted(session, session.start_epoch - 1)
    train_criterion = nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
    # Validation loss is plain cross-entropy so it stays comparable across label_smoothing values.
    val_criterion = nn.CrossEntropyLoss()
    on_batch = _BatchHook(callbacks, should_stop, batches, hp.epochs * batches)
    epoch = session.start_epoch - 1
    for epoch in range(session.start_epoch, hp.epochs + 1):
        progress = session.resumed_progress if epoch == session.start_epoch else None
        if progress is None:
            progress = EpochProgress.start(session.schedule.lr, device)
        data.train.set_epoch(epoch, start_batch=progress.batches_done)
        on_batch.epoch = epoch
        seconds_before = progress.seconds  # spent on this epoch by the run that wrote resume.pt
        epoch_start = time.perf_counter()
        stats = session.train_epoch(train_criterion, epoch=epoch, on_batch=on_batch, progress=progress)
        if stats is None:
            return _interrupted(session, epoch - 1, _save_resume(session, checkpoint_dir, epoch, progress))
        val_loss, val_accuracy = evaluate(
            model, data.val, device=device, criterion=val_criterion, autocast=session.autocast, ranks=ranks
        )
        duration = seconds_before + time.perf_counter() - epoch_start
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
            learning_rate=progress.learning_rate,
            duration_seconds=duration,
            samples_per_second=stats.samples / stats.seconds if stats.seconds > 0 else 0.0,
        )
        session.history.append(metrics)
        logger.info(
            "epoch %d/%d: train_loss=%.4f train_acc=%.4f val_loss=%.4f val_acc=%.4f lr=%.3g %.1fs",
            epoch, hp.epochs, stats.loss, stats.accuracy, val_loss, val_accuracy, metrics.learning_rate,
            duration,
        )  # fmt: skip
        monitored = val_loss if hp.monitor == "val_loss" else val_accuracy
        session.schedule.after_epoch(monitored)
        is_best = is_better(monitored, session.best_metric, session.mode)
        if is_best:
            session.best_metric, session.best_epoch = monitored, epoch
            session.keep_best_weights()
        reason = session.early_stopping.step(monitored)
        stop_requested = reason is None and (on_batch.stop_seen or should_stop())
        # A stopped run always leaves a checkpoint of the epoch it ends on, so nothing finished is lost.
        is_last = epoch == hp.epochs or reason is not None or stop_requested
        checkpoint = None
        if is_best or is_last or epoch % hp.checkpoint_every == 0:
            checkpoint = _save(session, checkpoint_dir, epoch, is_best)
        # Reported with its checkpoint: a consumer stores both at once, with nothing to join later.
        callbacks.on_epoch_end(metrics, checkpoint)
        if reason is not None:
            logger.info("early stopping after epoch %d: %s", epoch, reason)
            return _finished(session, checkpoint_dir, epoch, reason)
        if stop_requested:
            logger.info("stop requested after epoch %d", epoch)
            return _interrupted(session, epoch)
    return _finished(session, checkpoint_dir, epoch)


def _finished(
    session: Session, checkpoint_dir: Path, epoch: int, early_stop_reason: str | None = None
) -> TrainingOutcome:
    """A run that ended by itself: its best epoch evaluated per class and exported."""
    evaluated = evaluate_best(session, checkpoint_dir, epoch)
    return TrainingOutcome(
        "early_stopped" if early_stop_reason else "completed",
        epoch,
        early_stop_reason,
        session.best_epoch,
        session.best_metric,
        val_metrics=evaluated.val,
        test_metrics=evaluated.test,
        exports=evaluated.exports,
    )
