"""TRAINQ_ACCEL_REDIRECT_PREFIX: downloads checked by the API, handed to nginx to send."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from app import queue
from app.contract import ExportFile
from app.main import create_app
from app.models import Job
from app.settings import Settings
from tests.factories import ONE_CPU, list_checkpoint, submit_job

PREFIX = "/_artifacts/"
WEIGHTS = b"weights" * 1000
# A name that must be percent-encoded in the header, as nginx decodes it before opening the file.
CHECKPOINT_NAME = "epoch 0001 #1%.pt"


@pytest.fixture
def job_id(engine: Engine, settings: Settings) -> str:
    """A job with one checkpoint and one export, both on disk and listed."""
    job = submit_job(engine, "my run/1")
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    folder = settings.artifacts_dir / job.id
    (folder / "attempt-1").mkdir(parents=True)
    (folder / CHECKPOINT_NAME).write_bytes(WEIGHTS)
    (folder / "attempt-1" / "model.onnx").write_bytes(WEIGHTS)
    sha256 = hashlib.sha256(WEIGHTS).hexdigest()
    listed = queue.CheckpointFile(
        epoch=1, file_name=CHECKPOINT_NAME, size_bytes=len(WEIGHTS), sha256=sha256, is_best=True
    )
    list_checkpoint(engine, lease=lease, checkpoint=listed)
    export = ExportFile(
        name="model.onnx",
        format="onnx",
        file_name="attempt-1/model.onnx",
        size_bytes=len(WEIGHTS),
        sha256=sha256,
    )
    with Session(engine) as session:
        row = session.get(Job, job.id)
        assert row is not None
        row.exports = [export.model_dump()]
        session.add(row)
        session.commit()
    return job.id


@pytest.fixture
def behind_nginx(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"accel_redirect_prefix": PREFIX}))) as client:
        yield client


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_checkpoint_download_is_handed_to_nginx_with_the_api_headers(
    client: TestClient, behind_nginx: TestClient, job_id: str, method: str
) -> None:
    url = f"/jobs/{job_id}/checkpoints/best"
    sent = client.request(method, url)
    handed = behind_nginx.request(method, url)
    assert handed.status_code == 200 and handed.content == b""
    assert handed.headers["x-accel-redirect"] == f"{PREFIX}{job_id}/epoch%200001%20%231%25.pt"
    for name in ("etag", "content-disposition", "content-type", "cache-control"):
        assert handed.headers[name] == sent.headers[name], name
    assert "x-accel-redirect" not in sent.headers


def test_an_export_download_is_handed_to_nginx(behind_nginx: TestClient, job_id: str) -> None:
    handed = behind_nginx.get(f"/jobs/{job_id}/exports/model.onnx")
    assert handed.status_code == 200 and handed.content == b""
    assert handed.headers["x-accel-redirect"] == f"{PREFIX}{job_id}/attempt-1/model.onnx"


def test_conditional_and_missing_downloads_are_answered_by_the_api(
    behind_nginx: TestClient, job_id: str, settings: Settings
) -> None:
    url = f"/jobs/{job_id}/checkpoints/best"
    etag = behind_nginx.get(url).headers["etag"]
    unchanged = behind_nginx.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and "x-accel-redirect" not in unchanged.headers
    (settings.artifacts_dir / job_id / CHECKPOINT_NAME).unlink()
    missing = behind_nginx.get(url)
    assert missing.status_code == 404 and "x-accel-redirect" not in missing.headers


@pytest.mark.parametrize("prefix", ["_artifacts/", "/_artifacts", "/a b/", "/a?b/", "/a#/", "/a\\b/"])
def test_a_prefix_nginx_could_not_match_is_refused(prefix: str) -> None:
    with pytest.raises(ValidationError, match="TRAINQ_ACCEL_REDIRECT_PREFIX must be an nginx location path"):
        Settings(accel_redirect_prefix=prefix)


def test_an_empty_prefix_means_the_api_sends_files_itself() -> None:
    assert Settings(accel_redirect_prefix=" ").accel_redirect_prefix is None
