"""DELETE /jobs/{id} and DELETE /jobs/{id}/checkpoints/{epoch}: rows first, then files, and the
start-up sweep that finishes a deletion a crash cut short."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, func, update
from sqlmodel import col, select

from app import housekeeping, queue
from app.artifacts import DELETED_MARKER, job_dir
from app.db import read_session, write_session
from app.main import create_app
from app.models import Checkpoint, EpochMetric, Job, JobEvent, JobLabel, JobTag, Sweep
from app.settings import Settings
from tests.factories import submit_job
from tests.support.job_files import claim_next, files_of, record_epochs, succeed_with_export
from tests.support.keys import ADMIN, ALICE, BOB, KEYED_OWNERS, auth

CHILD_TABLES = (EpochMetric, Checkpoint, JobEvent, JobLabel, JobTag)


def finished_job(engine: Engine, artifacts_dir: Path) -> str:
    """A succeeded job with checkpoints, a log, an export, a label row and a tag row."""
    job = submit_job(engine, "to delete")
    lease = claim_next(engine)
    with write_session(engine) as session:  # after the claim: a worker without the label serves it
        session.add(JobLabel(job_id=job.id, label="gpu"))
        session.add(JobTag(job_id=job.id, tag="baseline"))
    record_epochs(engine, artifacts_dir, lease, [0.9, 0.5, 0.7])
    succeed_with_export(engine, artifacts_dir, lease)
    return job.id


def rows_of(engine: Engine, job_id: str) -> dict[str, int]:
    with read_session(engine) as session:
        counts = {
            table.__tablename__: session.exec(
                select(func.count()).select_from(table).where(table.job_id == job_id)  # type: ignore[attr-defined]
            ).one()
            for table in CHILD_TABLES
        }
        counts["jobs"] = session.exec(select(func.count()).select_from(Job).where(Job.id == job_id)).one()
    return counts


def test_deleting_an_ended_job_removes_its_rows_and_its_folder(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    job_id = finished_job(engine, settings.artifacts_dir)
    other = finished_job(engine, settings.artifacts_dir)
    assert all(rows_of(engine, job_id).values())
    assert "attempt-1/model.safetensors" in files_of(settings.artifacts_dir, job_id)

    response = client.delete(f"/jobs/{job_id}")

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert set(rows_of(engine, job_id).values()) == {0}
    assert not job_dir(settings.artifacts_dir, job_id).exists()
    assert list(settings.artifacts_dir.iterdir()) == [job_dir(settings.artifacts_dir, other)]
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert client.delete(f"/jobs/{job_id}").status_code == 404
    assert client.get(f"/jobs/{other}").status_code == 200


def test_a_job_that_never_made_a_folder_is_deleted_too(client: TestClient, engine: Engine) -> None:
    job = submit_job(engine)
    assert queue.cancel(engine, job_id=job.id) is not None

    assert client.delete(f"/jobs/{job.id}").status_code == 204
    assert set(rows_of(engine, job.id).values()) == {0}


def test_queued_and_running_jobs_must_be_cancelled_before_they_are_deleted(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    running = submit_job(engine, "running")
    lease = claim_next(engine)
    record_epochs(engine, settings.artifacts_dir, lease, [0.5])
    queued = submit_job(engine, "queued")

    for job_id, status in ((running.id, "running"), (queued.id, "queued")):
        response = client.delete(f"/jobs/{job_id}")
        assert response.status_code == 409
        assert response.json()["detail"].startswith(f"the job is {status}: only ended jobs can be deleted")
        assert "cancel it first" in response.json()["detail"]
        assert rows_of(engine, job_id)["jobs"] == 1
    assert files_of(settings.artifacts_dir, running.id) == ["attempt-1/epoch-0001.pt"]
    with pytest.raises(queue.JobNotEnded):
        queue.delete_job(engine, job_id=queued.id)

    client.post(f"/jobs/{running.id}/cancel")
    assert client.delete(f"/jobs/{running.id}").status_code == 204


def test_owners_delete_their_own_jobs_and_admin_deletes_any(settings: Settings, engine: Engine) -> None:
    keyed = settings.model_copy(update={"api_keys": SecretStr(KEYED_OWNERS)})
    with TestClient(create_app(keyed)) as client:
        alices = client.post("/jobs", json={}, headers=auth(ALICE)).json()["id"]
        bobs = client.post("/jobs", json={}, headers=auth(BOB)).json()["id"]
        for job_id in (alices, bobs):
            queue.cancel(engine, job_id=job_id)

        assert client.delete(f"/jobs/{alices}", headers=auth(BOB)).status_code == 404
        assert rows_of(engine, alices)["jobs"] == 1
        assert client.delete(f"/jobs/{alices}", headers=auth(ALICE)).status_code == 204
        assert client.delete(f"/jobs/{bobs}", headers=auth(ADMIN)).status_code == 204
    assert rows_of(engine, alices)["jobs"] == rows_of(engine, bobs)["jobs"] == 0


def test_a_crash_between_the_rows_and_the_files_leaves_no_row_and_start_up_removes_the_folder(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = finished_job(engine, settings.artifacts_dir)
    folder = job_dir(settings.artifacts_dir, job_id)

    def crash(_artifacts_dir: Path, _job_id: str) -> bool:
        raise OSError("the process died here")

    with TestClient(create_app(settings)) as client:
        monkeypatch.setattr(housekeeping, "remove_job_folder", crash)
        assert client.delete(f"/jobs/{job_id}").status_code == 204
        monkeypatch.undo()
        assert set(rows_of(engine, job_id).values()) == {0}
        assert (folder / DELETED_MARKER).is_file()
        assert client.get("/health").json()["status"] == "ok"

    with TestClient(create_app(settings)) as client:
        assert not folder.exists()
        # Not reported as a job the database forgot: it was deleted.
        assert client.get("/health").json()["status"] == "ok"


def test_start_up_keeps_folders_that_were_not_deleted(settings: Settings, engine: Engine) -> None:
    live = finished_job(engine, settings.artifacts_dir)
    # A delete that failed before its commit (or is under way in another API process) leaves the
    # mark on a job that still exists.
    (job_dir(settings.artifacts_dir, live) / DELETED_MARKER).touch()
    # A folder the database does not know, unmarked: a rolled-back database, not a deletion.
    forgotten = job_dir(settings.artifacts_dir, "f" * 32)
    (forgotten / "attempt-1").mkdir(parents=True)
    (forgotten / "attempt-1" / "epoch-0001.pt").write_bytes(b"x")

    with TestClient(create_app(settings)) as client:
        assert client.get(f"/jobs/{live}").status_code == 200
        assert "forgot" not in str(client.get("/health").json())

    assert files_of(settings.artifacts_dir, live) == [
        DELETED_MARKER,
        "attempt-1/epoch-0002.pt",
        "attempt-1/epoch-0003.pt",
        "attempt-1/model.safetensors",
        "logs/attempt-1.log",
    ]
    assert files_of(settings.artifacts_dir, "f" * 32) == ["attempt-1/epoch-0001.pt"]


def test_a_checkpoint_is_deleted_with_its_file_but_not_the_best_one(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    submit_job(engine, keep_checkpoints_last=3)
    lease = claim_next(engine)
    record_epochs(engine, settings.artifacts_dir, lease, [0.5, 0.9, 0.8])
    succeed_with_export(engine, settings.artifacts_dir, lease)
    job_id = lease.job_id

    assert client.delete(f"/jobs/{job_id}/checkpoints/2").status_code == 204
    best = client.delete(f"/jobs/{job_id}/checkpoints/1")
    assert best.status_code == 409
    assert "is the job's best" in best.json()["detail"]
    assert client.delete(f"/jobs/{job_id}/checkpoints/2").status_code == 404
    assert client.delete(f"/jobs/{job_id}/checkpoints/3").status_code == 204

    assert [c["epoch"] for c in client.get(f"/jobs/{job_id}/checkpoints").json()] == [1]
    assert files_of(settings.artifacts_dir, job_id) == [
        "attempt-1/epoch-0001.pt",
        "attempt-1/model.safetensors",
        "logs/attempt-1.log",
    ]


def test_the_checkpoint_a_job_resumes_from_cannot_be_deleted_while_it_runs_or_waits(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    submit_job(engine, keep_checkpoints_last=3)
    lease = claim_next(engine)
    record_epochs(engine, settings.artifacts_dir, lease, [0.5, 0.9, 0.8])
    job_id = lease.job_id

    running = client.delete(f"/jobs/{job_id}/checkpoints/3")
    assert running.status_code == 409
    assert "resumes from" in running.json()["detail"]
    assert queue.release(engine, lease=lease, resume_file=None, runtime_seconds=1.0)
    assert client.delete(f"/jobs/{job_id}/checkpoints/3").status_code == 409
    assert client.delete(f"/jobs/{job_id}/checkpoints/2").status_code == 204

    client.post(f"/jobs/{job_id}/cancel")
    assert client.delete(f"/jobs/{job_id}/checkpoints/3").status_code == 204
    assert files_of(settings.artifacts_dir, job_id) == ["attempt-1/epoch-0001.pt"]


def test_another_owners_checkpoint_is_not_found(settings: Settings, engine: Engine) -> None:
    keyed = settings.model_copy(update={"api_keys": SecretStr(KEYED_OWNERS)})
    with TestClient(create_app(keyed)) as client:
        client.post("/jobs", json={"hyperparameters": {"keep_checkpoints_last": 2}}, headers=auth(ALICE))
        lease = claim_next(engine)
        record_epochs(engine, settings.artifacts_dir, lease, [0.5, 0.9, 0.8])
        path = f"/jobs/{lease.job_id}/checkpoints/2"
        assert client.delete(path, headers=auth(BOB)).status_code == 404
        assert client.delete(path, headers=auth(ADMIN)).status_code == 204


def test_a_job_of_a_sweep_is_deleted_like_any_other_and_the_sweep_stays(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    job_id = finished_job(engine, settings.artifacts_dir)
    with write_session(engine) as session:
        sweep = Sweep(method="grid", base={}, space={"learning_rate": [0.1, 0.01]})
        session.add(sweep)
        session.flush()
        session.execute(update(Job).where(col(Job.id) == job_id).values(sweep_id=sweep.id))
        sweep_id = sweep.id

    assert client.delete(f"/jobs/{job_id}").status_code == 204

    assert set(rows_of(engine, job_id).values()) == {0}
    with read_session(engine) as session:
        assert session.get(Sweep, sweep_id) is not None
