from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app import queue
from app.artifacts import log_path
from app.integrity import DamagedDatabase, check_artifacts, check_database
from app.main import create_app
from app.models import new_job_id
from app.settings import Settings
from tests.factories import ONE_CPU, submit_job
from tests.support.damage import break_btree_page, trainq_database, write_not_a_database
from tests.support.databases import sqlite_only


def database_path(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


def claimed_job(engine: Engine) -> str:
    """A job claimed once (attempts=1), as a worker leaves it."""
    job = submit_job(engine)
    lease = queue.claim(engine, worker_id="test-worker", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None and lease.job_id == job.id
    return job.id


def write_attempt_log(settings: Settings, job_id: str, attempt: int) -> None:
    path = log_path(settings.artifacts_dir / job_id, attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"attempt {attempt}\n")


@sqlite_only
def test_a_damaged_btree_page_fails_the_check_with_how_to_restore(settings: Settings) -> None:
    trainq_database(settings.database_url, jobs=3)
    break_btree_page(database_path(settings))
    with pytest.raises(DamagedDatabase) as raised:
        check_database(url=settings.database_url)
    message = str(raised.value)
    assert f"the database {database_path(settings)} is damaged" in message
    assert "page" in message  # quick_check's own finding is shown
    assert "trainq.db-wal and trainq.db-shm" in message
    assert f'sqlite3 {database_path(settings)} ".recover" | sqlite3 restored.db' in message


@sqlite_only
def test_a_file_that_is_not_a_database_fails_the_check(settings: Settings) -> None:
    write_not_a_database(database_path(settings))
    with pytest.raises(DamagedDatabase, match="file is not a database"):
        check_database(url=settings.database_url)


def test_a_healthy_or_new_database_passes_the_check(settings: Settings) -> None:
    check_database(url=settings.database_url)
    trainq_database(settings.database_url, jobs=3)
    check_database(url=settings.database_url)


def test_postgresql_is_not_quick_checked() -> None:
    # Nothing listens on port 1: any attempt to connect would fail.
    check_database(url="postgresql://trainq@127.0.0.1:1/trainq")


@sqlite_only
def test_the_api_refuses_to_start_on_a_damaged_database(settings: Settings) -> None:
    trainq_database(settings.database_url, jobs=3)
    break_btree_page(database_path(settings))
    with pytest.raises(DamagedDatabase, match="is damaged"), TestClient(create_app(settings)):
        pass


def test_health_is_degraded_naming_job_folders_the_database_does_not_know(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    known = trainq_database(settings.database_url, jobs=1)
    unknown = sorted(new_job_id() for _ in range(2))
    for job_id in [*known, *unknown]:
        (settings.artifacts_dir / job_id).mkdir(parents=True)
    with caplog.at_level(logging.ERROR, logger="app.integrity"), TestClient(create_app(settings)) as client:
        body = client.get("/health").json()
    assert body["status"] == "degraded"
    [problem] = body["problems"]
    assert problem.startswith("job folders with no job in the database: 2 (")
    assert all(job_id in problem for job_id in unknown)
    assert known[0] not in problem
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert unknown[0] in record.getMessage() and "restore the database from a backup" in record.getMessage()


def test_health_is_degraded_when_a_job_folder_shows_more_attempts_than_its_row(
    settings: Settings, engine: Engine
) -> None:
    job_id = claimed_job(engine)
    write_attempt_log(settings, job_id, 1)
    write_attempt_log(settings, job_id, 2)
    with TestClient(create_app(settings)) as client:
        body = client.get("/health").json()
    assert body["status"] == "degraded"
    [problem] = body["problems"]
    assert problem.startswith(
        f"jobs whose folder has logs of more attempts than their row counts: 1 ({job_id})"
    )


def test_health_is_ok_when_the_artifacts_folder_matches_the_database(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    ran = claimed_job(engine)
    write_attempt_log(settings, ran, 1)
    (settings.artifacts_dir / ran / "epoch-0001.pt").write_bytes(b"weights")
    submit_job(engine)  # queued: no folder yet
    # Not job folders: other things may live in the artifacts folder.
    (settings.artifacts_dir / "scratch").mkdir()
    (settings.artifacts_dir / ("0" * 32 + ".txt")).write_text("a note")
    with caplog.at_level(logging.ERROR, logger="app.integrity"), TestClient(create_app(settings)) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "problems": []}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_many_missing_jobs_are_counted_and_a_few_named(settings: Settings, engine: Engine) -> None:
    unknown = sorted(new_job_id() for _ in range(12))
    for job_id in unknown:
        (settings.artifacts_dir / job_id).mkdir(parents=True)
    [problem] = check_artifacts(engine=engine, artifacts_dir=settings.artifacts_dir)
    assert problem.startswith(f"job folders with no job in the database: 12 ({unknown[0]}, ")
    assert f"{unknown[4]} and 7 more)" in problem
    assert unknown[5] not in problem
