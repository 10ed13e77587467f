"""Exported model files through the API: download by name, ranges, conditional requests, owners."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from app import queue
from app.contract import ExportFile
from app.hyperparameters import Hyperparameters
from app.models import Job, JobCreate
from app.settings import Settings
from tests.support.keys import ALICE, BOB, auth

CONTENTS = {"model.safetensors": b"weights" * 2000, "model.onnx": b"graph" * 3000}
FORMATS = {"model.safetensors": "safetensors", "model.onnx": "onnx"}


@pytest.fixture
def job_id(engine: Engine, settings: Settings) -> str:
    """Alice's job with two exports in its first attempt's folder, listed as queue.succeed lists them."""
    job_in = JobCreate(name="my run/1", hyperparameters=Hyperparameters(export=["safetensors", "onnx"]))
    job, _ = queue.submit(engine, job_in=job_in, owner="alice")
    folder = settings.artifacts_dir / job.id / "attempt-1"
    folder.mkdir(parents=True)
    exports = []
    for name, data in CONTENTS.items():
        (folder / name).write_bytes(data)
        exports.append(
            ExportFile(
                name=name,
                format=FORMATS[name],  # type: ignore[arg-type]
                file_name=f"attempt-1/{name}",
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            ).model_dump()
        )
    with Session(engine) as session:
        row = session.get(Job, job.id)
        assert row is not None
        row.exports = exports
        session.add(row)
        session.commit()
    return job.id


@pytest.mark.parametrize("name", list(CONTENTS))
def test_an_export_downloads_by_the_name_the_job_lists(keyed: TestClient, job_id: str, name: str) -> None:
    job = keyed.get(f"/jobs/{job_id}", headers=auth(ALICE)).json()
    url = next(entry["url"] for entry in job["exports"] if entry["name"] == name)
    response = keyed.get(url, headers=auth(ALICE))
    assert response.status_code == 200
    assert response.content == CONTENTS[name]
    assert response.headers["etag"] == f'"{hashlib.sha256(CONTENTS[name]).hexdigest()}"'
    assert response.headers["content-disposition"].startswith("attachment")
    assert f"my-run-1-{job_id[:8]}-{name}" in response.headers["content-disposition"]


def test_export_downloads_answer_range_and_head_requests(keyed: TestClient, job_id: str) -> None:
    url, data = f"/jobs/{job_id}/exports/model.onnx", CONTENTS["model.onnx"]
    response = keyed.get(url, headers={**auth(ALICE), "Range": "bytes=100-"})
    assert response.status_code == 206
    assert response.content == data[100:]
    assert response.headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    head = keyed.head(url, headers=auth(ALICE))
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(data))


def test_an_unchanged_export_gets_304(keyed: TestClient, job_id: str) -> None:
    url = f"/jobs/{job_id}/exports/model.safetensors"
    etag = keyed.get(url, headers=auth(ALICE)).headers["etag"]
    response = keyed.get(url, headers={**auth(ALICE), "If-None-Match": etag})
    assert response.status_code == 304
    assert response.headers["etag"] == etag
    assert response.content == b""


@pytest.mark.parametrize("name", ["model.pt", "model", "attempt-1%2Fmodel.onnx", "..%2F..%2Fetc%2Fpasswd"])
def test_a_name_the_job_does_not_list_is_404(keyed: TestClient, job_id: str, name: str) -> None:
    response = keyed.get(f"/jobs/{job_id}/exports/{name}", headers=auth(ALICE))
    assert response.status_code == 404
    if "%2F" not in name:  # a path that no route matches gets the plain 404
        assert "it has: model.safetensors, model.onnx" in response.json()["detail"]


def test_another_owners_export_is_404(keyed: TestClient, job_id: str) -> None:
    for method in ("GET", "HEAD"):
        response = keyed.request(method, f"/jobs/{job_id}/exports/model.onnx", headers=auth(BOB))
        assert response.status_code == 404


def test_a_listed_export_whose_file_is_gone_is_404(
    keyed: TestClient, job_id: str, settings: Settings
) -> None:
    (settings.artifacts_dir / job_id / "attempt-1" / "model.onnx").unlink()
    response = keyed.get(f"/jobs/{job_id}/exports/model.onnx", headers=auth(ALICE))
    assert response.status_code == 404
    assert "missing" in response.json()["detail"]
