from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse
from sqlmodel import Session, col, select

from app.artifacts import job_dir
from app.deps import JobDep, SessionDep, SettingsDep
from app.models import Checkpoint, CheckpointPublic, Job

router = APIRouter(prefix="/jobs/{job_id}/checkpoints", tags=["checkpoints"])

_EPOCH_REF = re.compile(r"[0-9]{1,9}")
# One entity-tag of an If-None-Match list, weak or strong; the group is its opaque text.
_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')


class CheckpointFile(FileResponse):
    # Each chunk is one read in a worker thread and one trip through the ASGI stack: for files
    # of hundreds of megabytes, Starlette's 64 KiB makes the server CPU-bound.
    chunk_size = 1024 * 1024


@router.get("")
def list_checkpoints(job: JobDep, session: SessionDep) -> list[CheckpointPublic]:
    rows = session.exec(select(Checkpoint).where(Checkpoint.job_id == job.id).order_by(col(Checkpoint.epoch)))
    return [CheckpointPublic.from_row(row) for row in rows]


@router.head("/{ref}", include_in_schema=False)
@router.get(
    "/{ref}",
    response_class=CheckpointFile,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The checkpoint file."},
        206: {"content": {"application/octet-stream": {}}, "description": "A byte range of it."},
        304: {"description": "If-None-Match matched the ETag."},
    },
)
def download_checkpoint(
    ref: str, job: JobDep, session: SessionDep, settings: SettingsDep, request: Request
) -> Response:
    """ref is `latest`, `best` or an epoch number. Answers Range requests with 206."""
    row = _find(session, job, ref)
    folder = job_dir(settings.artifacts_dir, job.id).resolve()
    path = (folder / row.file_name).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise HTTPException(status_code=404, detail=f"checkpoint file for epoch {row.epoch} is missing")
    etag = f'"{row.sha256}"'
    if _not_modified(request.headers.getlist("if-none-match"), row.sha256):
        return Response(status_code=304, headers={"ETag": etag})
    return CheckpointFile(
        path,
        media_type="application/octet-stream",
        filename=_download_name(job, row),
        headers={"ETag": etag, "Cache-Control": "private, max-age=0"},
    )


def _not_modified(if_none_match: list[str], opaque_tag: str) -> bool:
    """RFC 9110 13.1.2: `*`, or any listed tag equal to ours under weak comparison (W/ ignored)."""
    # Splitting at commas cannot cut our tag (a hex digest) nor make a fragment look like it.
    elements = [element.strip() for value in if_none_match for element in value.split(",")]
    if elements == ["*"]:
        return True
    return any((match := _ENTITY_TAG.fullmatch(element)) and match[1] == opaque_tag for element in elements)


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


def _download_name(job: Job, row: Checkpoint) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", job.name or "job").strip("-.") or "job"
    best = "-best" if row.is_best else ""
    return f"{stem}-{job.id[:8]}-epoch{row.epoch}{best}.pt"
