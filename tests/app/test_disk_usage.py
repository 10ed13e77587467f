"""disk_bytes on GET /jobs/{id} and GET /jobs, and trainq_artifacts_bytes on /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, event

from app import queue
from app.artifacts import job_dir
from app.settings import Settings
from tests.factories import submit_job
from tests.support.job_files import claim_next, record_epochs, succeed_with_export


def bytes_on_disk(artifacts_dir: Path, job_id: str) -> int:
    """What a person would add up: every file of the job's folder but its logs."""
    folder = job_dir(artifacts_dir, job_id)
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and "logs" not in p.parts)


def artifacts_gauge(client: TestClient) -> float:
    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        if family.name == "trainq_artifacts_bytes":
            assert family.type == "gauge"
            (sample,) = family.samples
            return sample.value
    raise AssertionError("no trainq_artifacts_bytes in /metrics")


def jobs_with_files(engine: Engine, settings: Settings) -> list[str]:
    """A succeeded job (3 checkpoints kept, an export), a running one, one handed back with a
    resume file, and a queued one with nothing."""
    submit_job(engine, keep_checkpoints_last=3)
    done = claim_next(engine)
    record_epochs(engine, settings.artifacts_dir, done, [0.5, 0.4, 0.3], size_bytes=3000)
    succeed_with_export(engine, settings.artifacts_dir, done, size_bytes=777)
    submit_job(engine)
    running = claim_next(engine)
    record_epochs(engine, settings.artifacts_dir, running, [0.5, 0.6], size_bytes=2000)
    submit_job(engine)
    handed_back = claim_next(engine)
    record_epochs(engine, settings.artifacts_dir, handed_back, [0.5], size_bytes=100)
    resume = job_dir(settings.artifacts_dir, handed_back.job_id) / "attempt-1" / "resume.pt"
    resume.write_bytes(b"r" * 4321)
    assert queue.release(engine, lease=handed_back, resume_file="attempt-1/resume.pt", runtime_seconds=1.0)
    queued = submit_job(engine)
    return [done.job_id, running.job_id, handed_back.job_id, queued.id]


def test_disk_bytes_is_the_size_of_the_jobs_files(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    done, running, handed_back, queued = jobs_with_files(engine, settings)

    shown = {
        job_id: client.get(f"/jobs/{job_id}").json()["disk_bytes"] for job_id in (done, running, handed_back)
    }
    listed = {item["id"]: item["disk_bytes"] for item in client.get("/jobs").json()["items"]}

    expected = {
        job_id: bytes_on_disk(settings.artifacts_dir, job_id) for job_id in (done, running, handed_back)
    }
    assert expected[done] == 3001 + 3002 + 3003 + 777
    assert expected[handed_back] == 101 + 4321
    assert shown == expected
    assert listed == {**expected, queued: 0}
    assert client.get(f"/jobs/{queued}").json()["disk_bytes"] == 0
    assert artifacts_gauge(client) == sum(expected.values())


def test_the_gauge_follows_deletions(client: TestClient, engine: Engine, settings: Settings) -> None:
    done, *_ = jobs_with_files(engine, settings)
    before = artifacts_gauge(client)

    assert client.delete(f"/jobs/{done}").status_code == 204

    assert artifacts_gauge(client) == before - (3001 + 3002 + 3003 + 777)


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_page_of_jobs_sums_their_checkpoints_in_one_query(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    app_engine = client.app.state.engine  # type: ignore[attr-defined]
    jobs_with_files(engine, settings)
    with statements(app_engine) as few:
        client.get("/jobs")
    for _ in range(10):
        submit_job(engine, keep_checkpoints_last=2)
        lease = claim_next(engine)
        record_epochs(engine, settings.artifacts_dir, lease, [0.5, 0.4, 0.3])
    with statements(app_engine) as many:
        items = client.get("/jobs").json()["items"]

    assert len(items) == 14
    assert len(many) == len(few)
    assert sum("checkpoints" in statement for statement in many) == 1
