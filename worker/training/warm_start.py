"""init_from and freeze_backbone: a model that starts from another job's weights, and a backbone
held still while the classifier head learns.

The head is what models.head_parameter_names says, for both: a warm start leaves it fresh when the
class count differs, and freezing trains it alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.hooks import RemovableHandle

from app.contract import WarmStart

from .checkpoint import read_checkpoint
from .errors import ConfigError
from .models import head_parameter_names

logger = logging.getLogger(__name__)

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
# A misfit list longer than this is cut short in the failure message.
MAX_NAMES_LISTED = 5


def load_warm_start(model: nn.Module, path: Path, *, model_name: str, source_job: str) -> WarmStart:
    """Load the weights of the checkpoint at `path` (job `source_job`'s) into `model`: every tensor
    whose name and shape match; the head stays as built when its shape differs (another class
    count). Never the source's optimizer, schedule or epoch: this job trains from its epoch 1."""
    state = read_checkpoint(path)
    source_name = state.get("model_name")
    if source_name != model_name:
        raise ConfigError(
            f"init_from job {source_job} trained a {source_name} model, and this job's model is "
            f"{model_name}: set model to {source_name}, or start from a job that trained a {model_name}"
        )
    source: dict[str, Any] = state["model_state_dict"]
    own = model.state_dict()
    head = head_parameter_names(model)
    merged: dict[str, Any] = {}
    new: list[str] = []
    misfits = sorted(set(source) - set(own))
    for key, tensor in own.items():
        theirs = source.get(key)
        if theirs is not None and theirs.shape == tensor.shape:
            merged[key] = theirs
        elif key in head:
            merged[key] = tensor
            new.append(key)
        else:
            misfits.append(key)
    if misfits:
        listed = ", ".join(misfits[:MAX_NAMES_LISTED]) + (", ..." if len(misfits) > MAX_NAMES_LISTED else "")
        raise ConfigError(
            f"init_from job {source_job}'s {model_name} does not fit this job's {model_name} beyond the "
            f"classifier head ({listed} differ): the image channels or size differ; train on data "
            "shaped like the source's"
        )
    model.load_state_dict(merged)
    warm_start = WarmStart(
        job=source_job, epoch=int(state["epoch"]), loaded=len(merged) - len(new), new=sorted(new)
    )
    logger.info(
        "warm start from job %s epoch %d: %d tensors loaded, %d new (%s)",
        source_job, warm_start.epoch, warm_start.loaded, len(new), ", ".join(new) or "none",
    )  # fmt: skip
    return warm_start


def _keep_in_eval(module: nn.Module, args: tuple[Any, ...]) -> None:
    module.eval()


class BackboneFreeze:
    """freeze_backbone: only the head trains before epoch `unfreeze_at_epoch` (None: never after).

    The optimizer holds every parameter from the start: frozen ones simply get no gradient, so
    unfreezing leaves out none, and a checkpoint's optimizer state loads the same on either side
    of the unfreeze epoch."""

    def __init__(self, model: nn.Module, unfreeze_at_epoch: int | None) -> None:
        head = head_parameter_names(model)
        self._backbone = [param for name, param in model.named_parameters() if name not in head]
        # The head is a Linear layer: every batch norm belongs to the backbone.
        self._norms = [module for module in model.modules() if isinstance(module, BATCH_NORMS)]
        self._unfreeze_at_epoch = unfreeze_at_epoch
        self._hooks: list[RemovableHandle] = []
        self.frozen = False

    def enter_epoch(self, epoch: int) -> bool:
        """Freeze or unfreeze the backbone as `epoch` needs; True when that changed it."""
        frozen = self._unfreeze_at_epoch is None or epoch < self._unfreeze_at_epoch
        if frozen == self.frozen:
            return False
        for param in self._backbone:
            param.requires_grad_(not frozen)
        if frozen:
            # In training mode a batch norm normalises with the batch's statistics and moves its
            # running ones towards them: the frozen backbone would still drift, and the features
            # the head learns from would not be those it is evaluated on. The loop puts the model
            # in training mode each epoch, so each forward puts these back in eval mode.
            self._hooks = [norm.register_forward_pre_hook(_keep_in_eval) for norm in self._norms]
        else:
            for hook in self._hooks:
                hook.remove()
            self._hooks = []
        self.frozen = frozen
        logger.info("epoch %d: backbone %s", epoch, "frozen, only the head trains" if frozen else "trains")
        return True
