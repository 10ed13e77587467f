"""The end of a run that finished by itself: its best epoch's model, evaluated on the validation
and test splits, and exported for deployment."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from app.contract import EvaluationMetrics

from .checkpoint import checkpoint_filename, read_checkpoint
from .evaluation import evaluate_per_class
from .export import export_model
from .loaders import Loader
from .reports import ExportInfo
from .session import Session

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluated:
    val: EvaluationMetrics
    test: EvaluationMetrics | None
    exports: tuple[ExportInfo, ...]  # written by rank 0 (none on other ranks)


def _best_weights(session: Session, checkpoint_dir: Path) -> dict[str, Tensor] | None:
    """The best epoch's weights: kept by this process, or read back from an earlier attempt's
    checkpoint in the job's folder (None when neither has them: a worker that shares no disk
    with the attempt that wrote it)."""
    if session.best_weights is not None or session.best_epoch is None:
        return session.best_weights
    name = checkpoint_filename(session.best_epoch)
    for path in sorted(checkpoint_dir.parent.glob(f"attempt-*/{name}"), reverse=True):
        return dict(read_checkpoint(path)["model_state_dict"])
    return None


def _evaluate(session: Session, loader: Loader, epoch: int) -> EvaluationMetrics:
    return evaluate_per_class(
        session.model,
        loader,
        epoch=epoch,
        class_names=session.data.info.classes,
        device=session.device,
        autocast=session.autocast,
        ranks=session.ranks,
    )


def evaluate_best(session: Session, checkpoint_dir: Path, last_epoch: int) -> Evaluated:
    """Load the best epoch's weights into the model (every rank does), evaluate it per class on
    the validation split, and on the test split when the dataset has one, and write the exports
    the job asks for into `checkpoint_dir`."""
    weights = _best_weights(session, checkpoint_dir)
    epoch = last_epoch
    if weights is None:
        logger.warning(
            "the weights of best epoch %s are not on this worker: evaluating epoch %d's instead",
            session.best_epoch,
            last_epoch,
        )
    else:
        session.model.load_state_dict(weights)
        epoch = session.best_epoch or last_epoch
    data = session.data
    val = _evaluate(session, data.val, epoch)
    test = _evaluate(session, data.test, epoch) if data.test is not None else None
    logger.info(
        "best epoch %d: val_accuracy=%.4f%s",
        epoch,
        val.accuracy,
        "" if test is None else f" test_accuracy={test.accuracy:.4f}",
    )
    exports: tuple[ExportInfo, ...] = ()
    if session.ranks.is_main:
        exports = export_model(
            session.model,
            class_names=data.info.classes,
            eval_transform=data.eval_transform,
            model_name=session.hp.model,
            model_args={
                "num_classes": data.num_classes,
                "in_channels": data.in_channels,
                "image_size": data.image_size,
            },
            formats=session.hp.export,
            out_dir=checkpoint_dir,
        )
        for export in exports:
            logger.info("exported epoch %d as %s (%d bytes)", epoch, export.path, export.size_bytes)
    session.ranks.barrier()
    return Evaluated(val=val, test=test, exports=exports)
