from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import pydantic_core
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session

from app import disk_usage, job_etags, job_view, queue
from app.db import read_session
from app.deps import EngineDep, JobIdDep, KnownQueryRoute, PrincipalDep, SessionDep, SettingsDep
from app.downloads import not_modified
from app.filters import JobFilters, job_filters
from app.hyperparameters import Hyperparameters
from app.imagefolder_layout import LayoutError, find_layout
from app.job_etags import NOT_MODIFIED
from app.models import MAX_IDEMPOTENCY_KEY_CHARS, Job, JobCreate
from app.routes.serialized import serialized
from app.schemas import (
    JOB_LOOKUP,
    TOO_LARGE,
    DryRunPublic,
    ErrorMessage,
    JobPage,
    JobPublic,
    MetricPublic,
    job_lookup,
    summary_fields,
)
from app.search import Cursor, JobSort, page_of_jobs
from app.security import Principal

router = APIRouter(route_class=KnownQueryRoute, prefix="/jobs", tags=["jobs"])

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
        422: {
            "description": "Invalid request; with dry_run=true also an imagefolder dataset_path that this "
            "server's TRAINQ_DATA_DIR holds without a usable layout (the message the worker would give)."
        },
        **TOO_LARGE,
    },
)
def submit_job(
    job_in: JobCreate,
    principal: PrincipalDep,
    engine: EngineDep,
    session: SessionDep,
    settings: SettingsDep,
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
) -> Response:
    _check_init_from(session, job_in, principal)
    if dry_run:
        _check_image_folder(job_in.hyperparameters, settings.data_dir)
        return serialized(DryRunPublic.model_validate(job_in.model_dump()))
    try:
        job, created = queue.submit(
            engine, job_in=job_in, owner=principal.owner, idempotency_key=idempotency_key
        )
    except queue.IdempotencyConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    location = {"Location": f"/jobs/{job.id}"}
    if created:
        # A new job has no files yet.
        public = JobPublic.from_rows(
            job,
            [],
            [],
            waiting_reason=queue.waiting_reason(session, job=job),
            queue_place=queue.queue_place(session, job=job),
            disk_bytes=0,
        )
        return serialized(public, status_code=201, headers=location)
    return serialized(job_view.public(session, job, settings.artifacts_dir), headers=location)


def _check_image_folder(hp: Hyperparameters, data_dir: Path) -> None:
    """A dry run's look at an imagefolder job's folder, where this server sees the data folder.

    Only dry runs look: workers may mount another disk at TRAINQ_DATA_DIR, so a real submit
    must not be refused for what this machine lacks.
    """
    if hp.dataset != "imagefolder" or hp.dataset_path is None or not data_dir.is_dir():
        return
    try:
        find_layout(data_dir, hp.dataset_path)
    except LayoutError as exc:
        # Shaped like FastAPI's own 422s, so clients read both the same way.
        raise HTTPException(
            status_code=422,
            detail=[
                {
                    "type": "dataset_layout",
                    "loc": ["body", "hyperparameters", "dataset_path"],
                    # As the worker reports it: the owner knows the folder by its setting's name.
                    "msg": str(exc).replace(os.path.realpath(data_dir), "TRAINQ_DATA_DIR"),
                    "input": hp.dataset_path,
                }
            ],
        ) from exc


def _check_init_from(session: Session, job_in: JobCreate, principal: Principal) -> None:
    """422, shaped like pydantic's, when init_from names no checkpoint this caller may start from."""
    init_from = job_in.hyperparameters.init_from
    if init_from is None:
        return
    problem = queue.init_from_problem(
        session, init_from, owner=None if principal.sees_all else principal.owner
    )
    if problem is not None:
        loc = ["body", "hyperparameters", "init_from"]
        raise HTTPException(status_code=422, detail=[{"loc": loc, "msg": problem, "type": "value_error"}])


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    responses=job_lookup("The job already ended"),
)
def cancel_job(
    job_id: JobIdDep, principal: PrincipalDep, engine: EngineDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """A queued job is cancelled at once; a running one stops within seconds and keeps its checkpoints."""
    try:
        job = queue.cancel(engine, job_id=job_id, owner=None if principal.sees_all else principal.owner)
    except queue.JobIsFinal as exc:
        raise HTTPException(
            status_code=409, detail=f"{exc}; only queued or running jobs can be cancelled"
        ) from exc
    if job is None:
        raise HTTPException(status_code=404, detail=f"job {job_id[:64]!r} not found")
    return serialized(job_view.public(session, job, settings.artifacts_dir))


@router.get("", response_model=JobPage)
def list_jobs(
    engine: EngineDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    filters: Annotated[JobFilters, Depends(job_filters)],
    sort: Annotated[JobSort, Query(description="The order; `-` first is descending. NULLs come last.")] = (
        JobSort.newest
    ),
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=400, description="next_cursor of the previous page, with the same sort.")
    ] = None,
) -> Response:
    """Newest first unless `sort` says otherwise; every filter given must hold."""
    after = Cursor.decode(cursor, sort) if cursor is not None else None
    with read_session(engine) as session:
        rows, next_cursor = page_of_jobs(
            session,
            filters=filters,
            sort=sort,
            limit=limit,
            cursor=after,
            owner=None if principal.sees_all else principal.owner,
        )
        sizes = disk_usage.disk_bytes(session, rows, artifacts_dir=settings.artifacts_dir)
    # Serialized straight from the rows' fields: a page is up to 500 jobs.
    items = [summary_fields(job, disk_bytes=sizes[job.id]) for job in rows]
    page = {"items": items, "next_cursor": next_cursor}
    return serialized(page)


@router.get("/{job_id}", response_model=JobPublic, responses={**JOB_LOOKUP, **NOT_MODIFIED})
async def get_job(job_id: str, request: Request) -> Response:
    """With an `ETag`; `If-None-Match` with the last one gets 304 while nothing has changed."""

    # The hottest route (clients poll it): the body, unless it would come out the same as a cached
    # one, is built from tuples straight to JSON, without a second validation of what the database holds.
    artifacts_dir = request.app.state.settings.artifacts_dir

    def build(session: Session, job: Job) -> bytes:
        return pydantic_core.to_json(job_view.public_dict(session, job, artifacts_dir))

    return await _versioned(request, job_id, route="job", build=build)


@router.get("/{job_id}/metrics", response_model=list[MetricPublic], responses={**JOB_LOOKUP, **NOT_MODIFIED})
async def get_metrics(
    job_id: str,
    request: Request,
    after_epoch: Annotated[int, Query(ge=0, le=1_000_000, description="Only epochs after this one.")] = 0,
) -> Response:
    """With the job's `ETag` (it changes with the job or its rows), answered like GET /jobs/{id}'s."""

    def build(session: Session, job: Job) -> bytes:
        return pydantic_core.to_json(job_view.metric_rows(session, job.id, after_epoch=after_epoch))

    return await _versioned(request, job_id, route=f"metrics>{after_epoch}", build=build)


async def _versioned(
    request: Request, job_id: str, *, route: str, build: Callable[[Session, Job], bytes]
) -> Response:
    """304 when If-None-Match holds the job's version; else the body, from the app's cache when
    it was built at this version already. What app.deps' dependencies would give is read from the
    request here: resolving them costs the pollers' routes more than their query.

    Both reads run in the thread pool: read on the event loop, SQLite's version query was 1.7x
    faster under load, but waited there for a pooled connection while writers held them all,
    stopping every request (BENCHMARKS.md). A version known since the file last changed is
    taken from memory, with no read; after a change, one read serves the requests waiting for it
    (KnownVersions.version)."""
    principal: Principal = request.state.principal
    engine = request.app.state.engine
    known: job_etags.KnownVersions = request.app.state.known_versions

    def read_version() -> job_etags.Current:
        with read_session(engine) as session:
            return job_etags.current(session, job_id, principal)

    found = await known.version((job_id, None if principal.sees_all else principal.owner), read_version)
    headers = {"ETag": job_etags.etag_header(found.version)}
    if not_modified(request.headers.getlist("if-none-match"), found.version):
        return Response(status_code=304, headers=headers)

    def build_now() -> bytes:
        with read_session(engine) as session:
            job = session.get(Job, found.job_id)
            if job is None:  # deleted since the version was read
                raise HTTPException(status_code=404, detail=f"job {job_id[:64]!r} not found")
            return build(session, job)

    cache: job_etags.BodyCache = request.app.state.body_cache
    key = (route, found.job_id, found.version)
    body = cache.get(key) if found.fixed else None
    if body is None:
        body = await run_in_threadpool(build_now)
        if found.fixed:
            cache.put(key, body)
    return Response(body, media_type="application/json", headers=headers)
