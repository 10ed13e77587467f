"""A full disk under the artifacts folder: a clear disk_full failure, retried, and a quiet log."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import queue
from app.db import make_engine
from app.uploads import content_digest
from tests.e2e.conftest import Service, running_service
from tests.factories import ONE_CPU, submit_job

TMPFS_SIZE = "48k"  # room for logs, not for a checkpoint of even the smallest model


@pytest.fixture
def small_disk_service(tmp_path: Path) -> Iterator[Service]:
    """A live service whose TRAINQ_ARTIFACTS_DIR is a tiny tmpfs of its own (needs root)."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(artifacts)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        with running_service(tmp_path) as service:
            yield service
    finally:
        subprocess.run(["umount", "--lazy", str(artifacts)], check=True)


def _assert_disk_full_after_every_attempt(service: Service, job_id: str) -> None:
    job = service.wait_until_final(job_id, timeout_s=180)
    assert (job["status"], job["error"]["reason"]) == ("failed", "disk_full")
    assert job["attempts"] == 3  # retried like any failure of the machine, until max_attempts
    message = job["error"]["message"]
    assert "TRAINQ_ARTIFACTS_DIR" in message
    assert "MiB free" in message
    assert str(service.state_dir) not in message
    assert job["checkpoints"] == []
    log = service.workers[0].log()
    assert "Logging error" not in log
    assert log.count("Traceback") == 0


def test_a_checkpoint_that_fills_the_disk_fails_the_attempt_with_disk_full(
    small_disk_service: Service,
) -> None:
    small_disk_service.start_worker()
    job_id = small_disk_service.submit("fills-the-disk", epochs=2)
    _assert_disk_full_after_every_attempt(small_disk_service, job_id)


def test_a_job_on_an_already_full_disk_fails_with_disk_full_and_one_line_per_attempt_about_its_log(
    small_disk_service: Service,
) -> None:
    filler = small_disk_service.state_dir / "artifacts" / "filler"
    with filler.open("wb") as file, pytest.raises(OSError, match="No space left"):
        file.write(b"\0" * 1024 * 1024)
        file.flush()
    small_disk_service.start_worker()
    job_id = small_disk_service.submit("full-from-the-start", epochs=2)
    _assert_disk_full_after_every_attempt(small_disk_service, job_id)
    assert small_disk_service.workers[0].log().count("turned off: [Errno 28]") == 3


def test_an_upload_that_does_not_fit_the_apis_disk_is_507_and_leaves_nothing(
    small_disk_service: Service,
) -> None:
    service = small_disk_service
    engine = make_engine(service.env["TRAINQ_DATABASE_URL"])
    job = submit_job(engine)
    assert queue.claim(engine, worker_id="remote", lease_seconds=600, capabilities=ONE_CPU) is not None
    engine.dispose()
    body = b"w" * (256 * 1024)
    response = service.http.put(
        f"/jobs/{job.id}/attempts/1/files/epoch-0001.pt",
        content=body,
        headers={"Content-Digest": content_digest(hashlib.sha256(body).hexdigest())},
    )
    assert response.status_code == 507
    assert "TRAINQ_ARTIFACTS_DIR is full" in response.json()["detail"]
    assert [p for p in (service.state_dir / "artifacts").rglob("*") if p.is_file()] == []
    assert "Traceback" not in service.api.log()
