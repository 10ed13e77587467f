"""One training epoch, one evaluation pass, and the running totals that let an epoch stop and resume."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .distributed import Ranks
from .loaders import Loader
from .optim import LRSchedule
from .runtime import Autocast


@dataclass(frozen=True)
class EpochStats:
    loss: float
    accuracy: float
    samples: int
    seconds: float


@dataclass
class EpochProgress:
    """How far the current training epoch has got; a resume checkpoint carries it across processes.

    A resumed epoch adds to the very totals the interrupted one left, in the same
    order and precision, so it reports exactly the metrics of an uninterrupted epoch.
    """

    learning_rate: float  # in effect at the epoch's first batch: what its EpochMetrics report
    loss_sum: Tensor  # sum of batch loss x batch size; float32, on the training device
    correct: Tensor  # int64, on the training device
    batches_done: int = 0
    samples: int = 0
    seconds: float = 0.0  # training wall time, summed over every process that worked on the epoch

    @classmethod
    def start(cls, learning_rate: float, device: torch.device) -> EpochProgress:
        return cls(
            learning_rate,
            torch.zeros((), device=device),
            torch.zeros((), dtype=torch.int64, device=device),
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything but batches_done, which the checkpoint keeps at its top level."""
        return {
            "learning_rate": self.learning_rate,
            "loss_sum": self.loss_sum.cpu(),
            "correct": self.correct.cpu(),
            "samples": self.samples,
            "seconds": self.seconds,
        }

    def summed(self, ranks: Ranks) -> EpochProgress:
        """A copy whose totals are all ranks' together (every rank must call it)."""
        loss_sum, correct, samples = all_ranks(ranks, self.loss_sum, self.correct, self.samples)
        return dataclasses.replace(
            self,
            loss_sum=self.loss_sum.new_tensor(loss_sum),
            correct=self.correct.new_tensor(correct),
            samples=samples,
        )

    def emptied(self) -> EpochProgress:
        """The same point of the epoch with no totals: a rank's share once rank 0 holds the sum."""
        return dataclasses.replace(
            self,
            loss_sum=torch.zeros_like(self.loss_sum),
            correct=torch.zeros_like(self.correct),
            samples=0,
        )

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], batches_done: int, device: torch.device) -> EpochProgress:
        return cls(
            learning_rate=float(state["learning_rate"]),
            loss_sum=state["loss_sum"].to(device=device, dtype=torch.float32),
            correct=state["correct"].to(device=device, dtype=torch.int64),
            batches_done=batches_done,
            samples=int(state["samples"]),
            seconds=float(state["seconds"]),
        )


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
    progress: EpochProgress,
    ranks: Ranks,
) -> EpochStats | None:
    """Train on what `loader` serves, adding to `progress`; None when stopped before the last batch.

    `loader` must serve the epoch from batch `progress.batches_done` on (see
    Loader.set_epoch). `on_batch(batches_done)` runs after every batch; when it
    returns True and batches remain, the epoch stops there and `progress` holds
    how far it got. Loss and accuracy accumulate on the device and are read once
    at the end, so the GPU never waits for the host in the middle of an epoch; the
    stats returned are those of all ranks together.
    """
    model.train()
    start = time.perf_counter()
    num_batches = len(loader)
    for images, labels in loader:
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
        progress.loss_sum += loss.detach().float() * batch_size
        progress.correct += (logits.detach().argmax(dim=1) == labels).sum()
        progress.samples += batch_size
        progress.batches_done += 1
        if on_batch(progress.batches_done) and progress.batches_done < num_batches:
            break
    # Reading the totals waits for the device, so the time taken after it is true.
    progress.loss_sum.item()
    progress.seconds += time.perf_counter() - start
    if progress.batches_done < num_batches:
        return None
    total_loss, total_correct, samples = all_ranks(
        ranks, progress.loss_sum, progress.correct, progress.samples
    )
    return EpochStats(total_loss / samples, total_correct / samples, samples, progress.seconds)


def all_ranks(ranks: Ranks, loss_sum: Tensor, correct: Tensor, samples: int) -> tuple[float, int, int]:
    """(loss sum, correct, samples) over all ranks, as Python numbers."""
    if not ranks.distributed:
        return loss_sum.item(), int(correct.item()), samples
    totals = torch.stack(
        [loss_sum.double(), correct.double(), loss_sum.new_tensor(samples, dtype=torch.float64)]
    )
    loss, right, count = ranks.sum_(totals).tolist()
    return loss, int(right), int(count)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Loader,
    *,
    device: torch.device,
    criterion: nn.Module,
    autocast: Autocast,
    ranks: Ranks,
) -> tuple[float, float]:
    """(mean loss, accuracy) over `loader` in eval mode, over every rank's shard of it."""
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
    total_loss, total_correct, total = all_ranks(ranks, loss_sum, correct, samples)
    return total_loss / total, total_correct / total
