"""Checkpoint files: atomic writes, validated reads, and models rebuilt from a file alone."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from app.contract import EvalTransform

from .errors import CheckpointError, disk_full_error
from .inference import Preprocess, attach_inference
from .models import build_architecture
from .transforms import IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger(__name__)

# 2 added the in-epoch position ("batches_done", "epoch_progress"); a format-1 file is an epoch end.
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
# Written only when a run stops mid-epoch, never reported through on_epoch_end: the one
# file that holds a partial epoch, so a run stopped again simply replaces it.
RESUME_FILENAME = "resume.pt"


def checkpoint_filename(epoch: int) -> str:
    return f"epoch-{epoch:04d}.pt"


class _HashingWriter:
    """Counts and hashes the bytes on their way to the file, so nothing is read back.

    Keeps the OSError a write raised: torch's writer reports it only as "unexpected pos"."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.digest = hashlib.sha256()
        self.size = 0
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.file.flush()


def write_checkpoint(state: dict[str, Any], checkpoint_dir: Path, epoch: int) -> tuple[Path, int, str]:
    """Write `state` as checkpoint_dir/epoch-NNNN.pt; return (absolute path, size in bytes, sha256)."""
    return write_atomically(checkpoint_dir, checkpoint_filename(epoch), partial(torch.save, state))


def write_resume_checkpoint(state: dict[str, Any], checkpoint_dir: Path) -> tuple[Path, int, str]:
    """Write `state` as checkpoint_dir/resume.pt, replacing any earlier one; same return as above."""
    return write_atomically(checkpoint_dir, RESUME_FILENAME, partial(torch.save, state))


def write_atomically(
    checkpoint_dir: Path, name: str, write: Callable[[BinaryIO], None]
) -> tuple[Path, int, str]:
    """Create checkpoint_dir/name (any file: checkpoints, exports) with what `write` writes to the file it is given; return
    (absolute path, size in bytes, sha256).

    Readers see either no file (or the previous one) or the complete new one, even after a crash.

    The bytes are fsynced under a temporary name before the rename, and the
    directory is fsynced after it so the rename itself survives a power cut.
    """
    checkpoint_dir = checkpoint_dir.resolve()
    path = checkpoint_dir / name
    writer: _HashingWriter | None = None
    try:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=checkpoint_dir, prefix=f".{path.name}.", suffix=".tmp")
        writer = _HashingWriter(os.fdopen(fd, "wb"))
        try:
            with writer.file as file:
                write(writer)  # type: ignore[arg-type]  # it has the write() and flush() writers use
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except Exception as exc:
        full = disk_full_error((writer and writer.error) or exc, checkpoint_dir)
        if full is not None:
            raise full from exc
        raise
    directory = os.open(checkpoint_dir, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path, writer.size, writer.digest.hexdigest()


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint's contents, loaded without running any pickled code."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        # Never torch's advice to load it with weights_only=False: that runs whatever the file holds.
        if "Unsupported global" in str(exc):
            problem = (
                "it holds objects other than tensors and plain values, which trainq never loads "
                "because they could run code; use a checkpoint trainq wrote"
            )
        else:
            problem = "it is damaged, or not a PyTorch checkpoint"
        raise CheckpointError(f"cannot read checkpoint {path}: {problem}") from exc
    if not isinstance(state, dict) or state.get("format_version") not in READABLE_FORMAT_VERSIONS:
        found = state.get("format_version") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a trainq checkpoint of format "
            f"{' or '.join(map(str, READABLE_FORMAT_VERSIONS))} (found {found!r})"
        )
    return state


def load_model(path: str | Path, map_location: str = "cpu") -> nn.Module:
    """The trained model from a checkpoint file alone, weights loaded, in eval() mode, with
    `model.class_names` (output i is class_names[i]) and `model.preprocess` (a PIL image or an
    image path to the input tensor, CHW) attached."""
    state = read_checkpoint(path, map_location)
    model = build_architecture(state["model_name"], **model_args(state))
    model.load_state_dict(state["model_state_dict"])
    attach_inference(model, class_names(state), preprocess(state))
    return model.to(map_location).eval()


def model_args(state: dict[str, Any]) -> dict[str, int]:
    """build_architecture's arguments besides the model's name: num_classes, in_channels, image_size."""
    return dict(
        state.get("model_args") or {key: state[key] for key in ("num_classes", "in_channels", "image_size")}
    )


def class_names(state: dict[str, Any]) -> list[str]:
    """The checkpoint's class names in output order; "0".."N-1" in one written before it kept them."""
    names = state.get("class_names")
    return list(names) if names is not None else [str(index) for index in range(state["num_classes"])]


def preprocess(state: dict[str, Any]) -> Preprocess:
    """The checkpoint's evaluation transform, as a callable."""
    saved = state.get("eval_transform")
    if saved is not None:
        return Preprocess(EvalTransform.model_validate(saved))
    # Written before checkpoints kept their transform: the one training applied then, which
    # normalised only the image folders of pretrained models.
    hp = state.get("hyperparameters") or {}
    normalised = hp.get("dataset") == "imagefolder" and bool(hp.get("pretrained"))
    legacy = EvalTransform(
        image_size=state["image_size"],
        resize_size=state["image_size"],
        channels=state["in_channels"],
        mean=list(IMAGENET_MEAN) if normalised else None,
        std=list(IMAGENET_STD) if normalised else None,
    )
    return Preprocess(legacy, square_resize=True)
