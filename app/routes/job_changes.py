"""Changing and deleting a job: PATCH /jobs/{id} (name, tags, notes, priority while queued) and
DELETE /jobs/{id} (an ended job, its rows, then its files)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from app import housekeeping, job_view, queue
from app.db import read_session
from app.deps import EngineDep, JobIdDep, KnownQueryRoute, PrincipalDep, SessionDep, SettingsDep, find_job
from app.models import JobStatus, JobUpdate
from app.routes.serialized import serialized
from app.schemas import JobPublic, job_lookup

router = APIRouter(route_class=KnownQueryRoute, prefix="/jobs", tags=["jobs"])


@router.delete(
    "/{job_id}",
    status_code=204,
    responses=job_lookup("The job is queued or running"),
)
def delete_job(job_id: str, principal: PrincipalDep, engine: EngineDep, settings: SettingsDep) -> Response:
    """Delete an ended job: its rows (metrics, checkpoints, events), then its files (checkpoints,
    exports, logs). A queued or running job must be cancelled first."""
    with read_session(engine) as session:
        job = find_job(session, job_id, principal)
    if not job.status.is_final:
        raise HTTPException(status_code=409, detail=_cancel_first(job.id, job.status))
    try:
        deleted = housekeeping.delete_job(
            engine,
            artifacts_dir=settings.artifacts_dir,
            job_id=job.id,
            owner=None if principal.sees_all else principal.owner,
        )
    except queue.JobNotEnded as exc:  # ended statuses are final, but the row is read again under a lock
        raise HTTPException(status_code=409, detail=_cancel_first(job.id, exc.status)) from exc
    if not deleted:  # deleted meanwhile by another request
        raise HTTPException(status_code=404, detail=f"job {job_id[:64]!r} not found")
    return Response(status_code=204)


def _cancel_first(job_id: str, status: JobStatus) -> str:
    return (
        f"the job is {status.value}: only ended jobs can be deleted; cancel it first "
        f"(POST /jobs/{job_id}/cancel), then delete it"
    )


@router.patch(
    "/{job_id}",
    response_model=JobPublic,
    responses=job_lookup("A new priority for a job no longer queued"),
)
def update_job(
    job_id: JobIdDep,
    changes: JobUpdate,
    principal: PrincipalDep,
    engine: EngineDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """Change the fields sent: name, tags (the new list), notes, and priority while the job is queued."""
    try:
        job = queue.update_job(
            engine, job_id=job_id, changes=changes, owner=None if principal.sees_all else principal.owner
        )
    except queue.PriorityFixed as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    if job is None:
        raise HTTPException(status_code=404, detail=f"job {job_id[:64]!r} not found")
    return serialized(job_view.public(session, job, settings.artifacts_dir))
