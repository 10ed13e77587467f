from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi import Path as PathParam
from sqlmodel import Session, col, select

from app import housekeeping, queue
from app.deps import EngineDep, JobDep, KnownQueryRoute, SessionDep, SettingsDep
from app.downloads import ArtifactFile, artifact_response, download_stem, file_responses
from app.models import Checkpoint, Job
from app.routes.serialized import serialized
from app.schemas import CheckpointPublic, ErrorMessage

router = APIRouter(route_class=KnownQueryRoute, prefix="/jobs/{job_id}/checkpoints", tags=["checkpoints"])

_EPOCH_REF = re.compile(r"[0-9]{1,9}")


@router.get("", response_model=list[CheckpointPublic])
def list_checkpoints(job: JobDep, session: SessionDep) -> Response:
    rows = session.exec(select(Checkpoint).where(Checkpoint.job_id == job.id).order_by(col(Checkpoint.epoch)))
    return serialized([CheckpointPublic.from_row(row) for row in rows])


@router.head("/{ref}", include_in_schema=False)
@router.get(
    "/{ref}",
    response_class=ArtifactFile,
    responses=file_responses("The checkpoint file."),
)
def download_checkpoint(
    ref: str, job: JobDep, session: SessionDep, settings: SettingsDep, request: Request
) -> Response:
    """ref is `latest`, `best` or an epoch number. Answers Range requests with 206."""
    row = _find(session, job, ref)
    return artifact_response(
        request,
        artifacts_dir=settings.artifacts_dir,
        accel_redirect_prefix=settings.accel_redirect_prefix,
        job=job,
        file_name=row.file_name,
        sha256=row.sha256,
        download_name=f"{download_stem(job)}-epoch{row.epoch}{'-best' if row.is_best else ''}.pt",
        missing=f"checkpoint file for epoch {row.epoch} is missing",
    )


@router.delete(
    "/{epoch}",
    status_code=204,
    responses={
        409: {"model": ErrorMessage, "description": "The best checkpoint, or the one the job resumes from."}
    },
)
def delete_checkpoint(
    epoch: Annotated[int, PathParam(ge=0, le=999_999_999)],
    job: JobDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> Response:
    """Delete one checkpoint: its row, then its file. Not the best one, nor, while the job runs or
    waits to run again, the latest (it resumes from it)."""
    try:
        deleted = housekeeping.delete_checkpoint(
            engine, artifacts_dir=settings.artifacts_dir, job_id=job.id, epoch=epoch
        )
    except queue.CheckpointInUse as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    if not deleted:
        raise HTTPException(status_code=404, detail=f"job {job.id} has no checkpoint of epoch {epoch}")
    return Response(status_code=204)


def _find(session: Session, job: Job, ref: str) -> Checkpoint:
    query = select(Checkpoint).where(Checkpoint.job_id == job.id)
    if ref == "latest":
        query = query.order_by(col(Checkpoint.epoch).desc())
    elif ref == "best":
        query = query.where(col(Checkpoint.is_best))
    elif _EPOCH_REF.fullmatch(ref):
        query = query.where(Checkpoint.epoch == int(ref))
    else:
        raise HTTPException(
            status_code=404, detail="checkpoint ref must be 'latest', 'best' or an epoch number"
        )
    row = session.exec(query.limit(1)).first()
    if row is None:
        raise HTTPException(status_code=404, detail=f"job {job.id} has no checkpoint {ref!r}")
    return row
