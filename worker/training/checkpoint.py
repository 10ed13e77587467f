"""Checkpoint files: atomic writes, validated reads, and models rebuilt from a file alone."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from .errors import CheckpointError, disk_full_error
from .models import build_architecture

logger = logging.getLogger(__name__)

# 2 added the in-epoch position ("batches_done", "epoch_progress"); a format-1 file is an epoch end.
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
# Written only when a run stops mid-epoch, never listed through on_checkpoint: the one
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
    return _write_atomically(state, checkpoint_dir, checkpoint_filename(epoch))


def write_resume_checkpoint(state: dict[str, Any], checkpoint_dir: Path) -> tuple[Path, int, str]:
    """Write `state` as checkpoint_dir/resume.pt, replacing any earlier one; same return as above."""
    return _write_atomically(state, checkpoint_dir, RESUME_FILENAME)


def _write_atomically(state: dict[str, Any], checkpoint_dir: Path, name: str) -> tuple[Path, int, str]:
    """Readers see either no file (or the previous one) or the complete new one, even after a crash.

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
                torch.save(state, writer)  # type: ignore[arg-type]
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
    """The trained model from a checkpoint file alone, weights loaded, in eval() mode."""
    state = read_checkpoint(path, map_location)
    model = build_architecture(
        state["model_name"], state["num_classes"], state["in_channels"], state["image_size"]
    )
    model.load_state_dict(state["model_state_dict"])
    return model.to(map_location).eval()
