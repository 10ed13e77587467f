"""The checkpoint a job's init_from names, put where its training process reads it.

Looked up again at the claim (app.queue.source_checkpoint): since the submit, the source may have
stopped listing it (a newer best or latest replaced it). With the shared artifacts folder the file
is read where the API keeps it; a worker on another host downloads it, its sha256 checked and the
lease kept alive meanwhile (worker/transfers.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from app import queue
from app.artifacts import job_dir
from app.hyperparameters import InitFrom
from worker.transfers import AttemptTransfers


class SourceCheckpointGone(Exception):
    """init_from's checkpoint is no longer listed, or its file is missing: the job fails with
    checkpoint_error (another attempt would find it gone too)."""


def init_checkpoint(
    engine: Engine,
    *,
    hyperparameters: dict[str, Any],
    artifacts_dir: Path,
    transfers: AttemptTransfers | None,
    into: Path,
) -> Path | None:
    """The local file of the checkpoint hyperparameters' init_from names (None without one);
    a download goes into the folder `into`."""
    raw = hyperparameters.get("init_from")
    if raw is None:
        return None
    init_from = InitFrom.model_validate(raw)
    gone = (
        f"init_from: job {init_from.job} no longer has checkpoint {init_from.checkpoint!r} (it was "
        "removed after this job was submitted); resubmit with another of its checkpoints"
    )
    found = queue.source_checkpoint(engine, init_from=init_from)
    if found is None:
        raise SourceCheckpointGone(gone)
    if transfers is not None:
        return transfers.fetch_init(
            job_id=init_from.job, file_name=found.file_name, sha256=found.sha256, into=into
        )
    path = job_dir(artifacts_dir, init_from.job).resolve() / found.file_name
    if not path.is_file():
        raise SourceCheckpointGone(gone)
    return path
