"""Resumable, verified checkpoint downloads: bytes go to `<file>.part`, renamed only once the sha256 matches."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from trainq.errors import ChecksumMismatch, TrainqError, error_for

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Download:
    """A finished download: where it is, what it is, and how much of it this call transferred."""

    path: Path
    epoch: int | None  # a checkpoint's; None for an export
    size_bytes: int
    sha256: str
    resumed_from_bytes: int  # bytes already in the .part file and kept
    transferred_bytes: int  # bytes received from the server by this call


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def fetch_checkpoint(
    http: httpx.Client,
    entry: Mapping[str, Any],
    target: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    resume: bool = True,
) -> Download:
    """Download the checkpoint or export listed as `entry` (with its url, size_bytes and sha256) to `target`."""
    size, expected = int(entry["size_bytes"]), str(entry["sha256"])
    part = part_path(target)
    kept = part.stat().st_size if resume and part.is_file() else 0
    if kept > size:
        # Longer than the file: not a prefix of it, whatever it is.
        kept = 0
    hasher = hashlib.sha256()
    if kept:
        with part.open("rb") as existing:
            hasher = hashlib.file_digest(existing, "sha256")
        logger.info("resuming %s at byte %d of %d", part, kept, size)
    if progress is not None:
        progress(kept, size)
    transferred = 0
    if kept < size:
        # If-Range: should the file behind the URL have changed, the server sends all of it (200), not a range.
        headers = {"Range": f"bytes={kept}-", "If-Range": f'"{expected}"'} if kept else {}
        with http.stream("GET", str(entry["url"]), headers=headers) as response:
            if response.is_error:
                response.read()
                raise error_for(response)
            if kept and response.status_code != 206:
                kept, hasher = 0, hashlib.sha256()
            try:
                with part.open("ab" if kept else "wb") as out:
                    for chunk in response.iter_bytes(CHUNK_BYTES):
                        out.write(chunk)
                        hasher.update(chunk)
                        transferred += len(chunk)
                        if progress is not None:
                            progress(kept + transferred, size)
            except httpx.TransportError as exc:
                raise TrainqError(
                    f"the download was interrupted after {kept + transferred} of {size} bytes ({exc}); "
                    f"run it again to resume from {part}"
                ) from exc
            except OSError as exc:
                raise TrainqError(f"cannot write {part}: {exc.strerror or exc}") from exc
    actual = hasher.hexdigest()
    if actual != expected:
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(str(target), expected, actual)
    os.replace(part, target)
    return Download(
        path=target,
        epoch=int(entry["epoch"]) if "epoch" in entry else None,
        size_bytes=size,
        sha256=actual,
        resumed_from_bytes=kept,
        transferred_bytes=transferred,
    )
