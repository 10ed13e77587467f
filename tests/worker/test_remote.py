"""A worker's uploads and downloads through the real API app: fenced, verified, retried."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from app import queue
from app.main import create_app
from app.settings import Settings
from tests.factories import ONE_CPU, submit_job
from tests.support.processes import free_port
from worker.remote import ApiFailure, ApiFiles, StaleAttempt

NO_RETRIES = (0.0, 0.0)


def claimed(engine: Engine) -> queue.Lease:
    submit_job(engine)
    lease = queue.claim(engine, worker_id="remote", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    return lease


def test_a_checkpoint_goes_up_and_comes_back_whole(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    lease = claimed(engine)
    data = bytes(range(256)) * 20_000  # several read chunks
    sha = hashlib.sha256(data).hexdigest()
    local = tmp_path / "epoch-0001.pt"
    local.write_bytes(data)
    files = ApiFiles(client)
    files.upload_checkpoint(job_id=lease.job_id, attempt=1, path=local, sha256=sha)
    assert queue.release(
        engine, lease=lease, resume_file="attempt-1/epoch-0001.pt", resume_sha256=sha, runtime_seconds=1.0
    )

    into = tmp_path / "fetched" / "resume-epoch-0001.pt"
    files.download(job_id=lease.job_id, relative_name="attempt-1/epoch-0001.pt", sha256=sha, into=into)
    assert into.read_bytes() == data
    assert [p.name for p in into.parent.iterdir()] == [into.name]  # no temporary file left


def test_an_upload_of_a_lost_attempt_raises_stale_attempt(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    lease = claimed(engine)
    queue.cancel(engine, job_id=lease.job_id)
    local = tmp_path / "epoch-0001.pt"
    local.write_bytes(b"weights")
    with pytest.raises(StaleAttempt, match="no longer holds"):
        ApiFiles(client).upload_checkpoint(
            job_id=lease.job_id, attempt=1, path=local, sha256=hashlib.sha256(b"weights").hexdigest()
        )


def test_a_download_that_does_not_match_its_sha256_is_retried_then_fails(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    lease = claimed(engine)
    local = tmp_path / "epoch-0001.pt"
    local.write_bytes(b"weights")
    files = ApiFiles(client, retry_delays_s=NO_RETRIES)
    files.upload_checkpoint(
        job_id=lease.job_id, attempt=1, path=local, sha256=hashlib.sha256(b"weights").hexdigest()
    )
    queue.release(
        engine,
        lease=lease,
        resume_file="attempt-1/epoch-0001.pt",
        resume_sha256=hashlib.sha256(b"weights").hexdigest(),
        runtime_seconds=1.0,
    )
    into = tmp_path / "fetched.pt"
    with pytest.raises(ApiFailure, match="arrived with sha256") as failure:
        files.download(
            job_id=lease.job_id, relative_name="attempt-1/epoch-0001.pt", sha256="0" * 64, into=into
        )
    assert failure.value.reason == "api_unreachable"
    assert not into.exists()
    assert list(tmp_path.glob(".*.tmp")) == []


def test_an_api_that_does_not_answer_fails_the_upload_after_the_retries(tmp_path: Path) -> None:
    local = tmp_path / "epoch-0001.pt"
    local.write_bytes(b"weights")
    files = ApiFiles(httpx.Client(base_url=f"http://127.0.0.1:{free_port()}"), retry_delays_s=NO_RETRIES)
    with pytest.raises(ApiFailure, match=r"could not upload epoch-0001\.pt") as failure:
        files.upload_checkpoint(job_id="j", attempt=1, path=local, sha256="0" * 64)
    assert failure.value.reason == "api_unreachable"


def test_the_start_up_check_refuses_a_key_that_is_not_the_workers(settings: Settings, engine: Engine) -> None:
    keyed = settings.model_copy(update={"api_keys": SecretStr(f"worker:{'w' * 24},alice:{'a' * 24}")})
    with TestClient(create_app(keyed)) as client:
        client.headers["Authorization"] = "Bearer " + "w" * 24
        ApiFiles(client).check_access()
        for key, status in (("a" * 24, "403"), ("x" * 24, "401")):
            client.headers["Authorization"] = f"Bearer {key}"
            with pytest.raises(ApiFailure, match=f"answered {status}") as refused:
                ApiFiles(client).check_access()
            assert refused.value.reason == "api_refused"


def test_the_start_up_check_lets_a_worker_wait_for_an_api_that_is_not_up_yet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    files = ApiFiles(httpx.Client(base_url=f"http://127.0.0.1:{free_port()}"))
    with caplog.at_level(logging.WARNING, logger="worker.remote"):
        files.check_access()
    assert "does not answer yet" in caplog.text
