"""Checkpoint files through the API: listing, download by ref, ranges and conditional requests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app import queue
from app.settings import Settings
from tests.factories import ONE_CPU, list_checkpoint, submit_job


@pytest.fixture
def job_with_checkpoints(engine: Engine, settings: Settings) -> tuple[str, dict[int, bytes]]:
    job = submit_job(engine, "my run/1")
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    contents = {2: b"best-weights" * 1000, 3: b"latest-weights" * 1000}
    job_dir = settings.artifacts_dir / job.id
    job_dir.mkdir(parents=True)
    for epoch, data in contents.items():
        (job_dir / f"epoch-{epoch:04d}.pt").write_bytes(data)
        list_checkpoint(
            engine,
            lease=lease,
            checkpoint=queue.CheckpointFile(
                epoch=epoch,
                file_name=f"epoch-{epoch:04d}.pt",
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                is_best=epoch == 2,
            ),
        )
    return job.id, contents


def test_checkpoints_are_listed_on_the_job(client: TestClient, job_with_checkpoints: tuple) -> None:
    job_id, contents = job_with_checkpoints
    listed = client.get(f"/jobs/{job_id}").json()["checkpoints"]
    assert [(c["epoch"], c["is_best"], c["size_bytes"]) for c in listed] == [
        (2, True, len(contents[2])),
        (3, False, len(contents[3])),
    ]
    assert listed[0]["url"] == f"/jobs/{job_id}/checkpoints/2"
    assert listed[0]["sha256"] == hashlib.sha256(contents[2]).hexdigest()
    assert client.get(f"/jobs/{job_id}/checkpoints").json() == listed


@pytest.mark.parametrize(("ref", "epoch"), [("best", 2), ("latest", 3), ("2", 2), ("3", 3)])
def test_checkpoints_download_by_ref(
    client: TestClient, job_with_checkpoints: tuple, ref: str, epoch: int
) -> None:
    job_id, contents = job_with_checkpoints
    response = client.get(f"/jobs/{job_id}/checkpoints/{ref}")
    assert response.status_code == 200
    assert response.content == contents[epoch]
    assert response.headers["etag"] == f'"{hashlib.sha256(contents[epoch]).hexdigest()}"'
    disposition = response.headers["content-disposition"]
    assert f"my-run-1-{job_id[:8]}-epoch{epoch}" in disposition
    assert disposition.startswith("attachment")


def test_checkpoint_downloads_answer_range_requests(client: TestClient, job_with_checkpoints: tuple) -> None:
    job_id, contents = job_with_checkpoints
    response = client.get(f"/jobs/{job_id}/checkpoints/latest", headers={"Range": "bytes=100-"})
    assert response.status_code == 206
    assert response.content == contents[3][100:]
    assert response.headers["content-range"] == f"bytes 100-{len(contents[3]) - 1}/{len(contents[3])}"


def test_head_answers_the_download_headers_without_a_body(
    client: TestClient, job_with_checkpoints: tuple
) -> None:
    job_id, contents = job_with_checkpoints
    response = client.head(f"/jobs/{job_id}/checkpoints/best")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(contents[2]))
    assert response.content == b""


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        (["{etag}"], 304),
        (["W/{etag}"], 304),
        (['"other", W/{etag}'], 304),
        (['"other"', "{etag}"], 304),  # a list may come as several header lines
        (["*"], 304),
        (['"other", W/"another"'], 200),
        (["{etag}x"], 200),
    ],
)
def test_if_none_match_gets_304_when_any_tag_matches_weakly(
    client: TestClient, job_with_checkpoints: tuple, if_none_match: list[str], status: int
) -> None:
    job_id, _ = job_with_checkpoints
    url = f"/jobs/{job_id}/checkpoints/best"
    etag = client.get(url).headers["etag"]
    headers = [("If-None-Match", value.format(etag=etag)) for value in if_none_match]
    response = client.get(url, headers=headers)
    assert response.status_code == status
    assert response.headers["etag"] == etag


@pytest.mark.parametrize("ref", ["7", "first", "-1", "..%2F..%2Fetc%2Fpasswd", "1e3", "99999999999"])
def test_unknown_checkpoint_refs_are_404(client: TestClient, job_with_checkpoints: tuple, ref: str) -> None:
    job_id, _ = job_with_checkpoints
    assert client.get(f"/jobs/{job_id}/checkpoints/{ref}").status_code == 404


def test_a_listed_checkpoint_whose_file_is_gone_is_404(
    client: TestClient, job_with_checkpoints: tuple, settings: Settings
) -> None:
    job_id, _ = job_with_checkpoints
    Path(settings.artifacts_dir / job_id / "epoch-0003.pt").unlink()
    assert client.get(f"/jobs/{job_id}/checkpoints/latest").status_code == 404
