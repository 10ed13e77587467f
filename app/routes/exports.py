"""A job's exported model files (model.safetensors, model.pt, model.onnx), by the name its `exports` lists."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from app.contract import ExportFile
from app.deps import JobDep, KnownQueryRoute, SettingsDep
from app.downloads import ArtifactFile, artifact_response, download_stem, file_responses

router = APIRouter(route_class=KnownQueryRoute, prefix="/jobs/{job_id}/exports", tags=["exports"])


@router.head("/{name}", include_in_schema=False)
@router.get(
    "/{name}",
    response_class=ArtifactFile,
    responses=file_responses("The exported file."),
)
def download_export(name: str, job: JobDep, settings: SettingsDep, request: Request) -> Response:
    """name is one that the job's `exports` lists. Answers Range requests with 206."""
    listed = [ExportFile.model_validate(entry) for entry in job.exports or []]
    export = next((entry for entry in listed if entry.name == name), None)
    if export is None:
        names = ", ".join(entry.name for entry in listed) or "none"
        raise HTTPException(
            status_code=404, detail=f"job {job.id} has no export {name[:64]!r} (it has: {names})"
        )
    return artifact_response(
        request,
        artifacts_dir=settings.artifacts_dir,
        accel_redirect_prefix=settings.accel_redirect_prefix,
        job=job,
        file_name=export.file_name,
        sha256=export.sha256,
        download_name=f"{download_stem(job)}-{export.name}",
        missing=f"exported file {export.name} is missing",
    )
