"""Everything a run holds between batches, built fresh or restored from a checkpoint.

The checkpoint's keys are defined here, in one place, both ways. Epoch checkpoints
and the resume checkpoint of a mid-epoch stop share them: "epoch" is the last
completed epoch, and "batches_done" (0 at an epoch's end) how far the next one got.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from app.contract import WarmStart
from app.hyperparameters import Hyperparameters

from .checkpoint import FORMAT_VERSION, read_checkpoint
from .data import Data, build_data
from .distributed import ONE_RANK, Ranks
from .early_stopping import EarlyStopping, Mode
from .epoch import EpochProgress, EpochStats, train_one_epoch
from .errors import CheckpointError
from .export import check_exportable
from .models import build_architecture, build_model
from .optim import LRSchedule, build_optimizer
from .reports import EpochMetrics
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
from .warm_start import BackboneFreeze, load_warm_start

logger = logging.getLogger(__name__)


@dataclass
class Session:
    hp: Hyperparameters
    ranks: Ranks
    device: torch.device
    precision: Precision
    autocast: Autocast
    data: Data
    model: nn.Module  # the bare model: checkpoints hold its state_dict, evaluation runs it
    trained: nn.Module  # what training runs: the model, or DistributedDataParallel around it
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
    warm_start: WarmStart | None = None  # what init_from loaded (None on a resume: the checkpoint has it all)
    freeze: BackboneFreeze | None = None  # freeze_backbone's, when the job asks for it
    # The best epoch's weights, on the CPU, for the evaluation and exports at the end of the run;
    # None until this process has seen them (a resumed run may find them only in a file).
    best_weights: dict[str, Tensor] | None = None

    def keep_best_weights(self) -> None:
        self.best_weights = {
            name: tensor.detach().to("cpu", copy=True) for name, tensor in self.model.state_dict().items()
        }

    def train_epoch(
        self, criterion: nn.Module, *, epoch: int, on_batch: Callable[[int], bool], progress: EpochProgress
    ) -> EpochStats | None:
        """train_one_epoch (epoch `epoch`) with this run's model, data, optimizer, precision and schedule."""
        if self.freeze is not None and self.freeze.enter_epoch(epoch) and self.ranks.distributed:
            # DistributedDataParallel syncs the gradients of the parameters that trained when it was built.
            self.trained = _distributed(self.model, self.device)
        return train_one_epoch(
            self.trained,
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
            ranks=self.ranks,
        )

    def state_dict(self, epoch: int, progress: EpochProgress | None = None) -> dict[str, Any]:
        """The checkpoint after `epoch` (and `progress` into the next): constant keys, weights_only-loadable.

        Taken right after a batch, it holds the RNG state of that moment, so a run
        resumed from it draws the same dropout masks as an uninterrupted one. Every rank
        takes it at the same point (it gathers each rank's RNG state, and the epoch's totals
        so far), though only rank 0 writes it.
        """
        rng_states = self.ranks.gather(capture_rng_state(self.device))
        if progress is not None and self.ranks.distributed:
            progress = progress.summed(self.ranks)
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
            # What inference needs from the file alone (load_model, predict, export_model).
            "model_args": {
                "num_classes": self.data.num_classes,
                "in_channels": self.data.in_channels,
                "image_size": self.data.image_size,
            },
            "class_names": list(self.data.info.classes),
            "eval_transform": self.data.eval_transform.model_dump(mode="json"),
            "model_state_dict": self.model.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "scheduler_state_dict": self.schedule.state_dict(),
            "scaler_state_dict": self.scaler.state_dict(),
            "early_stopping_state_dict": self.early_stopping.state_dict(),
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "metrics": [m.model_dump() for m in self.history],
            "rng_state": rng_states[0],
            # One per rank, in rank order, for a multi-device run to resume each rank's own.
            "rank_rng_states": rng_states if self.ranks.distributed else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model_state_dict"])
        self.optimizer.load_state_dict(state["optimizer_state_dict"])
        self.schedule.load_state_dict(state["scheduler_state_dict"])
        self.scaler.load_state_dict(state["scaler_state_dict"])
        self.early_stopping.load_state_dict(state["early_stopping_state_dict"])
        self.best_metric = state["best_metric"]
        self.best_epoch = state["best_epoch"]
        self.history = [EpochMetrics.model_validate(m) for m in state["metrics"]]
        self.start_epoch = state["epoch"] + 1
        batches_done = int(state.get("batches_done", 0))  # format 1 holds epoch ends only
        if not batches_done and state["best_epoch"] == state["epoch"]:
            self.keep_best_weights()
        if batches_done:
            batches = len(self.data.train)
            if not 0 < batches_done < batches:
                raise ValueError(f"it stopped after batch {batches_done} of an epoch of {batches} batches")
            progress = EpochProgress.from_state_dict(state["epoch_progress"], batches_done, self.device)
            # The totals so far are all ranks' together: rank 0 carries them on, the others add to 0.
            self.resumed_progress = progress if self.ranks.is_main else progress.emptied()
        rank_states = state.get("rank_rng_states")
        # Last, so that nothing done while rebuilding the run draws from the restored generators.
        if rank_states is not None and len(rank_states) == self.ranks.world_size:
            restore_rng_state(rank_states[self.ranks.rank], self.device)
        else:
            restore_rng_state(state["rng_state"], self.device)


def _distributed(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def start_session(
    hp: Hyperparameters,
    *,
    data_dir: Path,
    resume_from: Path | None,
    init_from: Path | None = None,
    ranks: Ranks = ONE_RANK,
) -> Session:
    """Device, data, model, optimizer and the rest, from `hp` or from the checkpoint `resume_from`;
    in a multi-device run, this rank's part of them. `init_from`: the checkpoint hp.init_from names,
    whose weights a fresh run starts from."""
    # A format this worker cannot write fails the job now, not after its last epoch.
    check_exportable(hp.export)
    device = resolve_device(hp.device)
    precision = resolve_precision(hp.amp, device)
    seed_everything(hp.seed)
    data = build_data(hp, data_dir, device, ranks)
    warm_start = None
    if resume_from is None:
        model = build_model(
            hp.model,
            pretrained=hp.pretrained,
            num_classes=data.num_classes,
            in_channels=data.in_channels,
            image_size=data.image_size,
        )
        if init_from is not None:
            assert hp.init_from is not None  # the worker fetches a file only for a job that names one
            warm_start = load_warm_start(model, init_from, model_name=hp.model, source_job=hp.init_from.job)
    else:
        # The checkpoint replaces every weight, so pretrained files are not needed again.
        model = build_architecture(hp.model, data.num_classes, data.in_channels, data.image_size)
    configure_kernels(deterministic=hp.deterministic, device=device)
    model = model.to(device)
    if uses_channels_last(hp.channels_last, device, model):
        model = model.to(memory_format=torch.channels_last)
        data.train.memory_format = data.val.memory_format = torch.channels_last
    if hp.compile:
        # In place, so that state_dict keys stay those of the plain model (checkpoints load anywhere).
        model.compile()
    optimizer = build_optimizer(
        hp.optimizer,
        model.parameters(),
        learning_rate=hp.learning_rate,
        weight_decay=hp.weight_decay,
        momentum=hp.momentum,
    )
    mode: Mode = "min" if hp.monitor == "val_loss" else "max"
    session = Session(
        hp=hp,
        ranks=ranks,
        device=device,
        precision=precision,
        autocast=autocast_factory(device, precision),
        data=data,
        model=model,
        trained=model,
        optimizer=optimizer,
        schedule=LRSchedule(hp, optimizer, len(data.train)),
        scaler=make_grad_scaler(device, precision),
        mode=mode,
        early_stopping=EarlyStopping(
            hp.early_stopping_patience,
            hp.early_stopping_min_delta,
            mode,
            metric=hp.monitor,
            min_epochs=hp.early_stopping_min_epochs,
        ),
        warm_start=warm_start,
        freeze=BackboneFreeze(model, hp.unfreeze_at_epoch) if hp.freeze_backbone else None,
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
    if session.freeze is not None:
        session.freeze.enter_epoch(session.start_epoch)
    if ranks.distributed:
        # After the checkpoint is loaded; DDP starts every rank from rank 0's weights anyway.
        session.trained = _distributed(model, device)
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
