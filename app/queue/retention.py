"""Which of a running job's checkpoints stay listed: the last N epochs' and the best M.

The best are ranked by the job's monitored metric as the training loop's is_best ranks them: lower
val_loss or higher val_accuracy, and of equal values the earlier epoch (a later epoch is best only
when it is strictly better). The checkpoint the loop marked is_best ranks first whatever its row
says: the loop decides which epoch is best, and this only extends its ranking to the runners-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.hyperparameters import Hyperparameters

_FIELDS = Hyperparameters.model_fields
DEFAULT_KEEP_LAST: int = _FIELDS["keep_checkpoints_last"].default
DEFAULT_KEEP_BEST: int = _FIELDS["keep_checkpoints_best"].default
DEFAULT_MONITOR: str = _FIELDS["monitor"].default


def checkpoints_to_keep(
    monitored: Mapping[int, float | None],
    *,
    best_epoch: int | None,
    keep_last: int,
    keep_best: int,
    monitor: str,
) -> set[int]:
    """The epochs to keep of those that have a checkpoint (`monitored`: epoch → its monitored
    metric, None when its metric row is missing, which ranks it last; `best_epoch`: the one
    marked is_best, if any)."""
    by_epoch = sorted(monitored)
    last = set(by_epoch[-keep_last:]) if keep_last > 0 else set()
    sign = 1.0 if monitor == "val_loss" else -1.0

    def rank(epoch: int) -> tuple[bool, bool, float, int]:
        value = monitored[epoch]
        return (epoch != best_epoch, value is None, sign * value if value is not None else 0.0, epoch)

    best = set(sorted(by_epoch, key=rank)[:keep_best])
    return last | best


def retention_of(hyperparameters: Mapping[str, Any]) -> tuple[int, int, str]:
    """(keep_last, keep_best, monitor) of a job's stored hyperparameters (jobs submitted before
    these existed keep the latest and the best)."""
    return (
        int(hyperparameters.get("keep_checkpoints_last", DEFAULT_KEEP_LAST)),
        int(hyperparameters.get("keep_checkpoints_best", DEFAULT_KEEP_BEST)),
        str(hyperparameters.get("monitor", DEFAULT_MONITOR)),
    )
