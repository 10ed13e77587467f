"""Everything a run holds between batches, built fresh or restored from a checkpoint.

The checkpoint's keys are defined here, in one place, both ways. Epoch checkpoints
and the resume checkpoint of a mid-epoch stop share them: "epoch" is the last
completed epoch, and "batches_done" (0 at an epoch's end) how far the next one got.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.hyperparameters import Hyperparameters

from .checkpoint import FORMAT_VERSION, read_checkpoint
from .data import Data, build_data
from .early_stopping import EarlyStopping, Mode
from .epoch import EpochProgress, EpochStats, train_one_epoch
from .errors import CheckpointError
from .events import EpochMetrics
from .models import build_architecture, build_model
from .optim import LRSchedule, build_optimizer
from .runtime import (
    Autocast,
    Precision,
    autocast_factory,
    capture_rng_state,
    configure_kernels,
    make_grad_scaler,
    resolve_device,
    resolve_precision,
    restore_rng_state,
    seed_everything,
    uses_channels_last,
)

logger = logging.getLogger(__name__)


@dataclass
class Session:
    hp: Hyperparameters
    device: torch.device
    precision: Precision
    autocast: Autocast
    data: Data
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler
    mode: Mode
    early_stopping: EarlyStopping
    best_metric: float | None = None
    best_epoch: int | None = None
    start_epoch: int = 1
    # The part of start_epoch a resume checkpoint brought along; None to start it afresh.
    resumed_progress: EpochProgress | None = None
    history: list[EpochMetrics] = field(default_factory=list)

    def train_epoch(
        self, criterion: nn.Module, *, on_batch: Callable[[int], bool], progress: EpochProgress
    ) -> EpochStats | None:
        """train_one_epoch with this run's model, data, optimizer, precision and schedule."""
        return train_one_epoch(
            self.model,
            self.data.train,
            device=self.device,
            optimizer=self.optimizer,
            criterion=criterion,
            scaler=self.scaler,
            autocast=self.autocast,
            schedule=self.schedule,
            grad_clip_norm=self.hp.grad_clip_norm,
            on_batch=on_batch,
            progress=progress,
        )

    def state_dict(self, epoch: int, progress: EpochProgress | None = None) -> dict[str, Any]:
        """The checkpoint after `epoch` (and `progress` into the next): constant keys, weights_only-loadable.

        Taken right after a batch, it holds the RNG state of that moment, so a run
        resumed from it draws the same dropout masks as an uninterrupted one.
        """
        return {
            "format_version": FORMAT_VERSION,
            "epoch": epoch,
            "batches_done": 0 if progress is None else progress.batches_done,
            "epoch_progress": None if progress is None else progress.state_dict(),
            "hyperparameters": self.hp.model_dump(mode="json"),
            "model_name": self.hp.model,
            "num_classes": self.data.num_classes,
            "in_channels": self.data.in_channels,
            "image_size": self.data.image_size,
            "model_state_dict": self.model.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "scheduler_state_dict": self.schedule.state_dict(),
            "scaler_state_dict": self.scaler.state_dict(),
            "early_stopping_state_dict": self.early_stopping.state_dict(),
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "metrics": [dataclasses.asdict(m) for m in self.history],
            "rng_state": capture_rng_state(self.device),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model_state_dict"])
        self.optimizer.load_state_dict(state["optimizer_state_dict"])
        self.schedule.load_state_dict(state["scheduler_state_dict"])
        self.scaler.load_state_dict(state["scaler_state_dict"])
        self.early_stopping.load_state_dict(state["early_stopping_state_dict"])
        self.best_metric = state["best_metric"]
        self.best_epoch = state["best_epoch"]
        self.history = [EpochMetrics(**m) for m in state["metrics"]]
        self.start_epoch = state["epoch"] + 1
        batches_done = int(state.get("batches_done", 0))  # format 1 holds epoch ends only
        if batches_done:
            batches = len(self.data.train)
            if not 0 < batches_done < batches:
                raise ValueError(f"it stopped after batch {batches_done} of an epoch of {batches} batches")
            self.resumed_progress = EpochProgress.from_state_dict(
                state["epoch_progress"], batches_done, self.device
            )
        # Last, so that nothing done while rebuilding the run draws from the restored generators.
        restore_rng_state(state["rng_state"], self.device)


def start_session(hp: Hyperparameters, *, data_dir: Path, resume_from: Path | None) -> Session:
    """Device, data, model, optimizer and the rest, from `hp` or from the checkpoint `resume_from`."""
    device = resolve_device(hp)
    precision = resolve_precision(hp, device)
    seed_everything(hp.seed)
    data = build_data(hp, data_dir, device)
    if resume_from is None:
        model = build_model(hp, data.num_classes, data.in_channels, data.image_size)
    else:
        # The checkpoint replaces every weight, so pretrained files are not needed again.
        model = build_architecture(hp.model, data.num_classes, data.in_channels, data.image_size)
    configure_kernels(hp, device)
    model = model.to(device)
    if uses_channels_last(hp, device, model):
        model = model.to(memory_format=torch.channels_last)
        data.train.memory_format = data.val.memory_format = torch.channels_last
    if hp.compile:
        # In place, so that state_dict keys stay those of the plain model (checkpoints load anywhere).
        model.compile()
    optimizer = build_optimizer(hp, model.parameters())
    mode: Mode = "min" if hp.monitor == "val_loss" else "max"
    session = Session(
        hp=hp,
        device=device,
        precision=precision,
        autocast=autocast_factory(device, precision),
        data=data,
        model=model,
        optimizer=optimizer,
        schedule=LRSchedule(hp, optimizer, len(data.train)),
        scaler=make_grad_scaler(device, precision),
        mode=mode,
        early_stopping=EarlyStopping(
            hp.early_stopping_patience, hp.early_stopping_min_delta, mode, metric=hp.monitor
        ),
    )
    if resume_from is not None:
        state = read_checkpoint(resume_from)
        try:
            session.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {resume_from} does not fit this job: {exc!r}") from exc
        progress = session.resumed_progress
        logger.info(
            "resumed from %s at epoch %d, batch %d",
            resume_from,
            session.start_epoch,
            0 if progress is None else progress.batches_done,
        )
    logger.info(
        "training %s on %s (%s%s%s) from epoch %d",
        hp.model,
        device,
        precision,
        ", channels_last" if data.train.memory_format == torch.channels_last else "",
        ", compiled" if hp.compile else "",
        session.start_epoch,
    )
    return session
