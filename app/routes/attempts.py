"""Files of one attempt, for workers on other hosts (owner `worker`, or this machine without keys).

PUT .../files/{name} uploads a checkpoint of the attempt, PUT .../log its training log, and
GET .../files/{name} downloads a listed file (to resume a job another host started). Uploads are
fenced like every write a worker makes: refused with 409 once the attempt no longer holds the job.
"""

from __future__ import annotations

import errno
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import select
from starlette.requests import ClientDisconnect

from app.artifacts import attempt_file_name, job_dir, log_path, remove_stale_files
from app.contract import EXPORT_FILE_NAMES
from app.db import read_session
from app.deps import EngineDep, KnownQueryRoute, PrincipalDep, SettingsDep, resolve_job_id
from app.models import Checkpoint, Job, JobStatus
from app.schemas import ErrorMessage
from app.security import ANONYMOUS, is_remote_peer
from app.uploads import (
    StoredFile,
    TooLarge,
    UploadError,
    content_digest,
    put_in_place,
    receive_to_file,
    sha256_from_content_digest,
    temporary_path,
)

logger = logging.getLogger(__name__)

router = APIRouter(route_class=KnownQueryRoute, prefix="/jobs/{job_id}/attempts/{attempt}", tags=["workers"])

FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# A checkpoint holds a model; a log is capped by the worker at TRAINQ_MAX_LOG_BYTES (plus one line).
MAX_CHECKPOINT_BYTES = 1 << 40
LOG_SLACK_BYTES = 64 * 1024

WORKER_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorMessage, "description": "Only the worker key (owner `worker`) may use these."},
    404: {"model": ErrorMessage, "description": "No such job or file."},
    409: {"model": ErrorMessage, "description": "This attempt no longer holds the job."},
}


class StoredFilePublic(BaseModel):
    """An uploaded file, as stored: its name relative to the job's folder, as rows name it."""

    file_name: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class AttemptState:
    job_status: JobStatus
    attempts: int  # claims of the job so far: the current attempt's number
    listed: dict[str, str | None]  # file names the job's rows list → their sha256 when known


async def require_worker(principal: PrincipalDep, request: Request) -> None:
    # Without keys (TRAINQ_ALLOW_ANONYMOUS lets other machines in), only this machine's workers upload.
    remote_anonymous = principal == ANONYMOUS and is_remote_peer(request.scope.get("client"))
    if not principal.is_worker or remote_anonymous:
        raise HTTPException(
            status_code=403,
            detail="only workers upload and fetch attempt files: use a key whose owner is 'worker' "
            "(TRAINQ_API_KEY on the worker host; without keys, only workers on the API's machine may)",
        )


WorkerOnly = Depends(require_worker)


def attempt_job_id(job_id: str, engine: EngineDep) -> str:
    """The full id of the path's job (workers see every owner's jobs). Its own session: an upload
    must not hold a connection (nor, on SQLite, a read transaction) while the body arrives."""
    with read_session(engine) as session:
        return resolve_job_id(session, job_id, owner=None)


# Declared after WorkerOnly in each route's dependencies: only workers learn which jobs exist.
JobId = Annotated[str, Depends(attempt_job_id)]


def _state(engine: Engine, job_id: str) -> AttemptState:
    with read_session(engine) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=f"job {job_id[:64]!r} not found")
        listed: dict[str, str | None] = dict(
            session.exec(
                select(Checkpoint.file_name, Checkpoint.sha256).where(Checkpoint.job_id == job_id)
            ).all()
        )
        if job.resume_file is not None:
            listed.setdefault(job.resume_file, job.resume_sha256)
        for export in job.exports or []:
            listed.setdefault(export["file_name"], export["sha256"])
        return AttemptState(job_status=job.status, attempts=job.attempts, listed=listed)


async def attempt_state(job_id: str, engine: EngineDep) -> AttemptState:
    return await anyio.to_thread.run_sync(_state, engine, job_id)


def _check_name(name: str) -> None:
    if not FILE_NAME.fullmatch(name) or name.endswith(".tmp"):
        raise HTTPException(
            status_code=422,
            detail=f"file name {name[:64]!r} must match {FILE_NAME.pattern} and not end with .tmp",
        )


def _refuse_stale(state: AttemptState, attempt: int, *, running: bool) -> None:
    """409 unless `attempt` is the job's current attempt (and, for checkpoints, still running)."""
    if state.attempts != attempt or (running and state.job_status != JobStatus.running):
        raise HTTPException(
            status_code=409,
            detail=f"attempt {attempt} no longer holds this job (it is {state.job_status.value}, "
            f"attempt {state.attempts}): this upload is refused",
        )


async def _receive(request: Request, final: Path, *, max_bytes: int) -> StoredFile:
    try:
        declared = sha256_from_content_digest(request.headers.get("content-digest"))
    except UploadError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    temporary = temporary_path(final)
    try:
        stored = await receive_to_file(request.stream(), temporary, max_bytes=max_bytes)
    except TooLarge as exc:
        temporary.unlink(missing_ok=True)
        raise HTTPException(status_code=413, detail=str(exc), headers={"connection": "close"}) from exc
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        if exc.errno in {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}:
            raise HTTPException(
                status_code=507, detail=f"the API's TRAINQ_ARTIFACTS_DIR is full: {exc.strerror}"
            ) from exc
        raise
    except ClientDisconnect as exc:
        temporary.unlink(missing_ok=True)
        logger.info("an upload to %s was cut off: the worker sends it again or its attempt ends", final)
        raise HTTPException(status_code=400, detail="the body was cut off: send it again") from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if stored.sha256 != declared:
        temporary.unlink(missing_ok=True)
        raise HTTPException(
            status_code=400,
            detail=f"the body's sha256 is {stored.sha256}, not the {declared} that Content-Digest "
            "declares: the file was damaged on the way; send it again",
        )
    return stored


async def _store(
    request: Request,
    engine: Engine,
    *,
    job_id: str,
    attempt: int,
    folder: Path,
    relative: str,
    max_bytes: int,
    running: bool,
) -> StoredFile:
    """Receive the body as `folder/relative` of the attempt, fenced before and after it arrived;
    then remove what no row lists: earlier attempts' leftovers, and this attempt's own
    checkpoints that newer ones superseded (the worker lists each upload before it sends the next)."""
    _refuse_stale(await attempt_state(job_id, engine), attempt, running=running)
    final = folder / relative
    stored = await _receive(request, final, max_bytes=max_bytes)
    state = await attempt_state(job_id, engine)
    try:
        _refuse_stale(state, attempt, running=running)
        if state.listed.get(relative, stored.sha256) != stored.sha256:
            raise HTTPException(status_code=409, detail=f"{relative} is listed with another sha256")
        await anyio.to_thread.run_sync(put_in_place, stored, final)
    except BaseException:
        stored.path.unlink(missing_ok=True)
        raise
    # A job's exports are listed only when it ends, after all of them arrived: until then this
    # attempt's export files are kept as if listed.
    exports = {attempt_file_name(attempt, name) for name in EXPORT_FILE_NAMES.values()}
    listed = set(state.listed) | {relative} | exports
    await anyio.to_thread.run_sync(lambda: remove_stale_files(folder, attempt=attempt + 1, listed=listed))
    return stored


@router.put(
    "/files/{name}",
    status_code=201,
    dependencies=[WorkerOnly],
    responses={**WORKER_ERRORS, 507: {"model": ErrorMessage, "description": "The API's disk is full."}},
)
async def upload_checkpoint(
    job_id: JobId,
    attempt: int,
    name: str,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
) -> StoredFilePublic:
    """A checkpoint of a running attempt, streamed; the body's sha256 in
    `Content-Digest: sha-256=:<base64>:` (RFC 9530)."""
    _check_name(name)
    relative = attempt_file_name(attempt, name)
    stored = await _store(
        request,
        engine,
        job_id=job_id,
        attempt=attempt,
        folder=job_dir(settings.artifacts_dir, job_id),
        relative=relative,
        max_bytes=MAX_CHECKPOINT_BYTES,
        running=True,
    )
    logger.info("job %s: attempt %d uploaded %s (%d bytes)", job_id, attempt, relative, stored.size_bytes)
    return StoredFilePublic(file_name=relative, size_bytes=stored.size_bytes, sha256=stored.sha256)


@router.put("/log", status_code=204, dependencies=[WorkerOnly], responses=WORKER_ERRORS)
async def upload_log(
    job_id: JobId, attempt: int, request: Request, engine: EngineDep, settings: SettingsDep
) -> Response:
    """The attempt's training log so far (it replaces the last upload); accepted until a later
    attempt starts, so that the lines written as the attempt ended are kept."""
    folder = job_dir(settings.artifacts_dir, job_id)
    await _store(
        request,
        engine,
        job_id=job_id,
        attempt=attempt,
        folder=folder,
        relative=log_path(folder, attempt).relative_to(folder).as_posix(),
        max_bytes=settings.max_log_bytes + LOG_SLACK_BYTES,
        running=False,
    )
    return Response(status_code=204)


@router.head("/files/{name}", include_in_schema=False, dependencies=[WorkerOnly])
@router.get(
    "/files/{name}",
    dependencies=[WorkerOnly],
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **WORKER_ERRORS},
)
async def download_attempt_file(
    job_id: JobId, attempt: int, name: str, engine: EngineDep, settings: SettingsDep
) -> Response:
    """A file the job's rows list (a checkpoint, or the resume file of a hand-back)."""
    _check_name(name)
    state = await attempt_state(job_id, engine)
    relative = attempt_file_name(attempt, name)
    path = job_dir(settings.artifacts_dir, job_id) / relative
    if relative not in state.listed or not path.is_file():
        raise HTTPException(status_code=404, detail=f"job {job_id} lists no file {relative}")
    sha256 = state.listed[relative]
    headers = {"Content-Digest": content_digest(sha256)} if sha256 else {}
    return FileResponse(path, media_type="application/octet-stream", headers=headers)
