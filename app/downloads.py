"""Serving a job's files: ETag (the sha256 its row lists), If-None-Match, Range, a download name;
or, behind nginx, handing the sending to it with X-Accel-Redirect."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request, Response
from fastapi.responses import FileResponse

from app.artifacts import job_dir
from app.models import Job

# One entity-tag of an If-None-Match list, weak or strong; the group is its opaque text.
_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')


class ArtifactFile(FileResponse):
    # Each chunk is one read in a worker thread and one trip through the ASGI stack: for files
    # of hundreds of megabytes, Starlette's 64 KiB makes the server CPU-bound.
    chunk_size = 1024 * 1024


def file_responses(description: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI's account of what artifact_response answers, for a route serving `description`."""
    return {
        200: {"content": {"application/octet-stream": {}}, "description": description},
        206: {"content": {"application/octet-stream": {}}, "description": "A byte range of it."},
        304: {"description": "If-None-Match matched the ETag."},
    }


def artifact_response(
    request: Request,
    *,
    artifacts_dir: Path,
    job: Job,
    file_name: str,
    sha256: str,
    download_name: str,
    missing: str,
    accel_redirect_prefix: str | None = None,
) -> Response:
    """The file a row of `job` lists (`file_name` relative to the job's folder), or 404 with
    `missing` when it is gone or would lie outside the folder. Range requests get 206.

    With `accel_redirect_prefix` (TRAINQ_ACCEL_REDIRECT_PREFIX) the answer is empty, and nginx,
    seeing X-Accel-Redirect, sends the file from its internal location, ranges included; the
    checks above (the caller's key and owner, the row, If-None-Match) have all been made here."""
    root = artifacts_dir.resolve()
    folder = job_dir(root, job.id)
    path = (folder / file_name).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise HTTPException(status_code=404, detail=missing)
    headers = {"ETag": f'"{sha256}"', "Cache-Control": "private, max-age=0"}
    if not_modified(request.headers.getlist("if-none-match"), sha256):
        return Response(status_code=304, headers=headers)
    if accel_redirect_prefix is not None:
        headers["Content-Disposition"] = _attachment(download_name)
        headers["X-Accel-Redirect"] = accel_redirect_prefix + quote(path.relative_to(root).as_posix())
        return Response(media_type="application/octet-stream", headers=headers)
    return ArtifactFile(path, media_type="application/octet-stream", filename=download_name, headers=headers)


def download_stem(job: Job) -> str:
    """The start of a downloaded file's name: the job's name made safe, and its id's first 8 characters."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", job.name or "job").strip("-.") or "job"
    return f"{stem}-{job.id[:8]}"


def _attachment(file_name: str) -> str:
    """Content-Disposition as Starlette's FileResponse writes it, for the answers nginx completes."""
    quoted = quote(file_name)
    if quoted != file_name:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{file_name}"'


def not_modified(if_none_match: list[str], opaque_tag: str) -> bool:
    """RFC 9110 13.1.2: `*`, or any listed tag equal to ours under weak comparison (W/ ignored).
    Used by every route that sends an ETag (files here, jobs in app.routes.jobs)."""
    # Splitting at commas cannot cut our tag (a hex digest) nor make a fragment look like it.
    elements = [element.strip() for value in if_none_match for element in value.split(",")]
    if elements == ["*"]:
        return True
    return any((match := _ENTITY_TAG.fullmatch(element)) and match[1] == opaque_tag for element in elements)
