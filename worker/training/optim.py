"""Optimizers and learning-rate schedules built from the hyperparameters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch.optim import lr_scheduler

from app.hyperparameters import Hyperparameters


def build_optimizer(
    name: Literal["adam", "adamw", "sgd"],
    params: Iterable[torch.nn.Parameter],
    *,
    learning_rate: float,
    weight_decay: float,
    momentum: float,
) -> torch.optim.Optimizer:
    """`momentum` is SGD's only. Fused kernels update every parameter in one pass (CPU and CUDA)
    instead of a Python loop of small ops per tensor, which the default picks on the CPU."""
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate, weight_decay=weight_decay, fused=True)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay, fused=True)
    return torch.optim.SGD(params, lr=learning_rate, momentum=momentum, weight_decay=weight_decay, fused=True)


class LRSchedule:
    """The learning-rate schedule, stepped where each kind expects it.

    - none: the learning rate never changes.
    - step: StepLR(step_size, gamma), stepped once per epoch after validation.
    - cosine: CosineAnnealingLR(T_max=epochs, eta_min=min_learning_rate), once per epoch.
    - plateau: ReduceLROnPlateau(factor=gamma, patience=plateau_patience,
      min_lr=min_learning_rate), once per epoch with the monitored validation metric.
    - onecycle: OneCycleLR(max_lr=learning_rate, epochs, steps_per_epoch, pct_start),
      stepped after every training batch and never at epoch end.
    """

    def __init__(self, hp: Hyperparameters, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> None:
        self.optimizer = optimizer
        self.per_batch = hp.lr_scheduler == "onecycle"
        self.scheduler: lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau | None
        if hp.lr_scheduler == "step":
            assert hp.step_size is not None  # enforced by Hyperparameters
            self.scheduler = lr_scheduler.StepLR(optimizer, step_size=hp.step_size, gamma=hp.gamma)
        elif hp.lr_scheduler == "cosine":
            self.scheduler = lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=hp.epochs, eta_min=hp.min_learning_rate
            )
        elif hp.lr_scheduler == "plateau":
            self.scheduler = lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min" if hp.monitor == "val_loss" else "max",
                factor=hp.gamma,
                patience=hp.plateau_patience,
                min_lr=hp.min_learning_rate,
            )
        elif hp.lr_scheduler == "onecycle":
            self.scheduler = lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=hp.learning_rate,
                epochs=hp.epochs,
                steps_per_epoch=steps_per_epoch,
                pct_start=hp.onecycle_pct_start,
            )
        else:
            self.scheduler = None

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def after_batch(self) -> None:
        if self.per_batch and self.scheduler is not None:
            self.scheduler.step()

    def after_epoch(self, monitored: float) -> None:
        if isinstance(self.scheduler, lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(monitored)
        elif self.scheduler is not None and not self.per_batch:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scheduler is not None and state is not None:
            self.scheduler.load_state_dict(state)
