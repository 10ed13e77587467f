"""Early stopping as a small state object that explains why it stops."""

from __future__ import annotations

from typing import Literal, TypedDict

Mode = Literal["min", "max"]


def is_better(value: float, best: float | None, mode: Mode, min_delta: float = 0.0) -> bool:
    """Whether `value` beats `best` by more than `min_delta` (any value beats no best)."""
    if best is None:
        return True
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta


class EarlyStoppingState(TypedDict):
    best: float | None
    best_epoch: int | None
    epochs_seen: int
    bad_epochs: int


class EarlyStopping:
    """Says stop once the metric has gone `patience` epochs without improving by more than `min_delta`.

    `mode` is "min" for losses, "max" for accuracies. With `patience` None it never
    says stop but still tracks its state, so the checkpoint keys stay constant.
    It never says stop before `min_epochs` epochs, however long the metric has stalled.
    Call `step` once per epoch, in order from epoch 1.
    """

    def __init__(
        self,
        patience: int | None,
        min_delta: float = 0.0,
        mode: Mode = "min",
        metric: str = "val_loss",
        min_epochs: int = 0,
    ) -> None:
        self.patience = patience
        self.min_epochs = min_epochs
        self.min_delta = min_delta
        self.mode: Mode = mode
        self.metric = metric
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.epochs_seen = 0
        self.bad_epochs = 0

    def step(self, value: float) -> str | None:
        """Record one epoch's metric; return why training should stop, or None to go on."""
        self.epochs_seen += 1
        if is_better(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.bad_epochs = value, self.epochs_seen, 0
            return None
        self.bad_epochs += 1
        if self.patience is None or self.bad_epochs < self.patience or self.epochs_seen < self.min_epochs:
            return None
        return (
            f"{self.metric} did not improve by more than {self.min_delta:g} for {self.bad_epochs} epochs "
            f"(best {self.best:.4f} at epoch {self.best_epoch})"
        )

    def state_dict(self) -> EarlyStoppingState:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "epochs_seen": self.epochs_seen,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state: EarlyStoppingState) -> None:
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.epochs_seen = state["epochs_seen"]
        self.bad_epochs = state["bad_epochs"]
