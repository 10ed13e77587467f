"""The checkpoint a job's init_from names: checked at submit, found again when a worker claims it.

Both ask the same question, so the rule for "best", "latest" and an epoch lives here once.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.contract import CheckpointFile
from app.db import read_session
from app.hyperparameters import InitFrom
from app.models import Checkpoint, Job


def _find(session: Session, init_from: InitFrom) -> Checkpoint | None:
    query = select(Checkpoint).where(Checkpoint.job_id == init_from.job)
    ref = init_from.checkpoint
    if ref == "best":
        query = query.where(col(Checkpoint.is_best))
    elif ref == "latest":
        query = query.order_by(col(Checkpoint.epoch).desc())
    else:
        query = query.where(Checkpoint.epoch == ref)
    return session.exec(query.limit(1)).first()


def init_from_problem(session: Session, init_from: InitFrom, *, owner: str | None) -> str | None:
    """What is wrong with `init_from` for a job of `owner` (None: one who sees every job), or None.
    Another owner's job is answered exactly like a job that does not exist."""
    source = session.get(Job, init_from.job)
    if source is None or (owner is not None and source.owner != owner):
        return f"no job {init_from.job} of yours exists: give the id of one of your jobs that has checkpoints"
    if _find(session, init_from) is not None:
        return None
    epochs = session.exec(
        select(Checkpoint.epoch).where(Checkpoint.job_id == init_from.job).order_by(col(Checkpoint.epoch))
    ).all()
    listed = f"its checkpoints are epochs {', '.join(map(str, epochs))}" if epochs else "it has none yet"
    return (
        f"job {init_from.job} ({source.status.value}) has no checkpoint {init_from.checkpoint!r}: {listed}; "
        'ask for "best", "latest" or one of those epochs'
    )


def source_checkpoint(engine: Engine, *, init_from: InitFrom) -> CheckpointFile | None:
    """The checkpoint `init_from` names now (None once it is gone), for the worker that claimed the job."""
    with read_session(engine) as session:
        row = _find(session, init_from)
        if row is None:
            return None
        return CheckpointFile(
            epoch=row.epoch,
            file_name=row.file_name,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            is_best=row.is_best,
        )
