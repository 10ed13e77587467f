"""Retention and deletion with a real API and a real worker: keep_checkpoints_last leaves exactly
the checkpoints it says on disk, and `trainq delete` removes a checkpoint, then the whole job."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import httpx

from tests.e2e.conftest import Service, running_service
from tests.support.artifacts import unlisted_files
from tests.support.cli import failed_with, trainq
from tests.support.processes import start_api, stop_when


def checkpoint_files(service: Service, job_id: str) -> list[str]:
    folder = service.state_dir / "artifacts" / job_id
    return sorted(p.relative_to(folder).as_posix() for p in folder.glob("attempt-*/epoch-*.pt"))


def test_keep_checkpoints_last_leaves_the_expected_files_and_delete_removes_the_job(service: Service) -> None:
    service.start_worker()
    job_id = service.submit("kept", dataset="digits", epochs=5, batch_size=64, keep_checkpoints_last=2)
    job = service.wait_until_final(job_id)
    assert job["status"] == "succeeded", job

    # The last two epochs and the best one (default keep_checkpoints_best=1), and nothing else.
    kept = sorted({4, 5, job["best_epoch"]})
    assert [c["epoch"] for c in job["checkpoints"]] == kept
    assert checkpoint_files(service, job_id) == [f"attempt-1/epoch-{epoch:04d}.pt" for epoch in kept]
    assert unlisted_files(service.state_dir, job_id) == []
    listed_bytes = sum(c["size_bytes"] for c in job["checkpoints"]) + sum(
        e["size_bytes"] for e in job["exports"]
    )
    assert job["disk_bytes"] == listed_bytes

    # One checkpoint that is not the best, then the job.
    other = next(c["epoch"] for c in job["checkpoints"] if not c["is_best"])
    removed = trainq(service, "delete", job_id, "--checkpoint", str(other))
    assert removed.exit_code == 0, removed.output
    assert f"attempt-1/epoch-{other:04d}.pt" not in checkpoint_files(service, job_id)
    assert other not in [c["epoch"] for c in service.job(job_id)["checkpoints"]]
    best = job["best_epoch"]
    failed_with(trainq(service, "delete", job_id, "--checkpoint", str(best)), "is the job's best")

    deleted = trainq(service, "delete", job_id)
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout == f"{job_id} deleted\n"
    assert not (service.state_dir / "artifacts" / job_id).exists()
    assert service.http.get(f"/jobs/{job_id}").status_code == 404
    failed_with(trainq(service, "delete", job_id), "not found")


def test_a_job_that_waits_must_be_cancelled_before_it_is_deleted(service: Service) -> None:
    # No worker carries the label: the job stays queued.
    response = service.http.post("/jobs", json={"resources": {"labels": ["nowhere"]}})
    job_id = response.json()["id"]

    failed_with(trainq(service, "delete", job_id), "the job is queued", "cancel it first")

    assert trainq(service, "cancel", job_id).exit_code == 0
    assert trainq(service, "delete", job_id).exit_code == 0
    assert service.http.get(f"/jobs/{job_id}").status_code == 404


# Enough files that removing the folder takes far longer than noticing the row is gone.
CRASH_FILES = 40_000


def test_an_api_killed_mid_delete_leaves_no_row_and_its_next_start_removes_the_folder(tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        job_id = service.http.post("/jobs", json={"resources": {"labels": ["nowhere"]}}).json()["id"]
        assert service.http.post(f"/jobs/{job_id}/cancel").status_code == 200
        folder = service.state_dir / "artifacts" / job_id / "attempt-1"
        folder.mkdir(parents=True)
        for i in range(CRASH_FILES):
            (folder / f"f{i}").write_bytes(b"x")

        deleting = threading.Thread(target=lambda: _send_ignoring_errors(service, f"/jobs/{job_id}"))
        deleting.start()
        # Stopped the moment the rows are gone, it cannot have removed 40,000 files since.
        stop_when(
            service.api.pid,
            lambda: not _job_row_exists(service.state_dir, job_id),
            what="the job's rows to be deleted",
            interval_s=0.002,
        )
        service.api.process.kill()
        service.api.wait(timeout_s=10)
        deleting.join()
        left = sorted(p.name for p in (service.state_dir / "artifacts").iterdir())
        # Killed after the rows' commit, before the folder was gone.
        assert left in ([job_id], [f".deleting-{job_id}"]), left

        api, base_url = start_api(service.state_dir, service.env, service.state_dir)
        try:
            assert httpx.get(f"{base_url}/health").json() == {"status": "ok", "problems": []}
            assert list((service.state_dir / "artifacts").iterdir()) == []
            assert httpx.get(f"{base_url}/jobs/{job_id}").status_code == 404
        finally:
            api.stop()


def _send_ignoring_errors(service: Service, path: str) -> None:
    with contextlib.suppress(httpx.TransportError):
        service.http.delete(path, timeout=60)


def _job_row_exists(state_dir: Path, job_id: str) -> bool:
    with closing(sqlite3.connect(state_dir / "trainq.db", timeout=5)) as db:
        return db.execute("SELECT count(*) FROM jobs WHERE id = ?", (job_id,)).fetchone()[0] == 1
