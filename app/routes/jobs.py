from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Header, HTTPException, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy import tuple_
from sqlmodel import Session, col, select

from app import queue
from app.db import read_session
from app.deps import EngineDep, JobDep, PrincipalDep, SessionDep, find_job
from app.models import (
    MAX_IDEMPOTENCY_KEY_CHARS,
    NOT_FOUND,
    TOO_LARGE,
    Checkpoint,
    CheckpointPublic,
    DryRunPublic,
    EpochMetric,
    ErrorMessage,
    Job,
    JobCreate,
    JobPage,
    JobPublic,
    JobStatus,
    MetricPublic,
    summary_fields,
)

router = APIRouter(prefix="/jobs", tags=["jobs"])

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@router.post(
    "",
    status_code=201,
    response_model=JobPublic,
    responses={
        200: {
            "model": JobPublic | DryRunPublic,
            "description": "Idempotency-Key seen before with the same body: that job, as it is now. "
            "With dry_run=true: the resolved request (name, hyperparameters, limits), nothing queued.",
        },
        409: {"model": ErrorMessage, "description": "Idempotency-Key seen before with a different body."},
        **TOO_LARGE,
    },
)
def submit_job(
    job_in: JobCreate,
    principal: PrincipalDep,
    engine: EngineDep,
    session: SessionDep,
    response: Response,
    dry_run: Annotated[bool, Query(description="Validate and resolve only; queue nothing.")] = False,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY_CHARS,
            pattern=r"^[\x21-\x7e]+$",
            description="Retrying with the same key and body returns the same job instead of a new one.",
        ),
    ] = None,
) -> JobPublic | JSONResponse:
    if dry_run:
        return JSONResponse(DryRunPublic.model_validate(job_in.model_dump()).model_dump(mode="json"))
    try:
        job, created = queue.submit(
            engine, job_in=job_in, owner=principal.owner, idempotency_key=idempotency_key
        )
    except queue.IdempotencyConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    response.headers["Location"] = f"/jobs/{job.id}"
    if created:
        return JobPublic.from_rows(job, [], [])
    response.status_code = 200
    return _public(session, job)


@router.post(
    "/{job_id}/cancel",
    responses={409: {"model": ErrorMessage, "description": "The job already ended."}, **NOT_FOUND},
)
def cancel_job(job_id: str, principal: PrincipalDep, engine: EngineDep, session: SessionDep) -> JobPublic:
    """A queued job is cancelled at once; a running one stops within seconds and keeps its checkpoints."""
    try:
        job = queue.cancel(engine, job_id=job_id, owner=None if principal.sees_all else principal.owner)
    except queue.JobIsFinal as exc:
        raise HTTPException(
            status_code=409, detail=f"{exc}; only queued or running jobs can be cancelled"
        ) from exc
    if job is None:
        raise HTTPException(status_code=404, detail=f"job {job_id[:64]!r} not found")
    return _public(session, job)


@router.get("", response_model=JobPage)
def list_jobs(
    engine: EngineDep,
    principal: PrincipalDep,
    status: Annotated[list[JobStatus] | None, Query(description="Only jobs in these states.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page.")
    ] = None,
) -> Response:
    """Newest first."""
    query = select(Job)
    if not principal.sees_all:
        query = query.where(Job.owner == principal.owner)
    if status:
        query = query.where(col(Job.status).in_(status))
    if cursor is not None:
        created_at, job_id = _decode_cursor(cursor)
        # A row-value comparison, which SQLite and PostgreSQL answer with an index range;
        # the equivalent OR of two conditions makes SQLite walk the index from the newest job.
        query = query.where(tuple_(col(Job.created_at), col(Job.id)) < tuple_(created_at, job_id))
    with read_session(engine) as session:
        rows = session.exec(
            query.order_by(col(Job.created_at).desc(), col(Job.id).desc()).limit(limit + 1)
        ).all()
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    # Serialized straight from the rows' fields: a page is up to 500 jobs.
    page = {"items": [summary_fields(job) for job in rows[:limit]], "next_cursor": next_cursor}
    return Response(pydantic_core.to_json(page), media_type="application/json")


METRIC_FIELDS = list(MetricPublic.model_fields)


@router.get("/{job_id}", response_model=JobPublic, responses=NOT_FOUND)
def get_job(job_id: str, engine: EngineDep, principal: PrincipalDep) -> Response:
    # The hottest route (clients poll it): one hop to the thread pool and one session for the
    # whole request; metric rows go straight from tuples to JSON, without an ORM or pydantic
    # object per row, nor a second validation of what the database holds.
    with read_session(engine) as session:
        job = find_job(session, job_id, principal)
        return Response(pydantic_core.to_json(_public_dict(session, job)), media_type="application/json")


def _public_dict(session: Session, job: Job) -> dict[str, Any]:
    """A JobPublic's fields, JSON-ready."""
    rows = session.exec(
        select(*(col(getattr(EpochMetric, name)) for name in METRIC_FIELDS))
        .where(EpochMetric.job_id == job.id)
        .order_by(col(EpochMetric.epoch))
    ).all()
    body = summary_fields(job)
    body["metrics"] = [dict(zip(METRIC_FIELDS, row, strict=True)) for row in rows]
    checkpoints = session.exec(
        select(Checkpoint).where(Checkpoint.job_id == job.id).order_by(col(Checkpoint.epoch))
    )
    body["checkpoints"] = [CheckpointPublic.from_row(c).model_dump(mode="json") for c in checkpoints]
    return body


def _public(session: Session, job: Job) -> JobPublic:
    return JobPublic.model_validate(_public_dict(session, job))


@router.get("/{job_id}/metrics", responses=NOT_FOUND)
def get_metrics(
    job: JobDep,
    session: SessionDep,
    after_epoch: Annotated[int, Query(ge=0, le=1_000_000, description="Only epochs after this one.")] = 0,
) -> list[MetricPublic]:
    rows = session.exec(
        select(EpochMetric)
        .where(EpochMetric.job_id == job.id, EpochMetric.epoch > after_epoch)
        .order_by(col(EpochMetric.epoch))
    ).all()
    return [MetricPublic.model_validate(row, from_attributes=True) for row in rows]


def _encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, job_id = raw.split("|", 1)
        return datetime.fromisoformat(created_at), job_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        # Shaped like every other 422, so clients handle one format.
        detail = [
            {
                "loc": ["query", "cursor"],
                "msg": "cursor is not valid: pass next_cursor from a previous page unchanged",
                "type": "value_error",
            }
        ]
        raise HTTPException(status_code=422, detail=detail) from exc
