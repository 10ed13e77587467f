"""A unique prefix of 8 or more hex digits names a job in every /jobs/{id}… path."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app import queue
from tests.factories import ONE_CPU, epoch_metrics
from tests.support.job_rows import insert_job
from tests.support.keys import ADMIN, ALICE, BOB, auth

FIRST = "abcdef01" + "0" * 24
SECOND = "abcdef01" + "1" * 24


def test_a_unique_prefix_works_on_get_metrics_checkpoints_logs_patch_and_cancel(
    client: TestClient, engine: Engine
) -> None:
    job_id = client.post("/jobs", json={"name": "short"}).json()["id"]
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1), progress=0.5)
    prefix = job_id[:8]
    assert client.get(f"/jobs/{prefix}").json()["id"] == job_id
    assert client.get(f"/jobs/{job_id[:20]}").json()["id"] == job_id
    assert [row["epoch"] for row in client.get(f"/jobs/{prefix}/metrics").json()] == [1]
    assert client.get(f"/jobs/{prefix}/checkpoints").json() == []
    assert client.get(f"/jobs/{prefix}/logs").status_code == 200
    assert client.patch(f"/jobs/{prefix}", json={"notes": "by prefix"}).json()["notes"] == "by prefix"
    cancelled = client.post(f"/jobs/{prefix}/cancel")
    assert (cancelled.status_code, cancelled.json()["id"]) == (200, job_id)
    assert client.get(f"/jobs/{job_id}").json()["status"] == "cancelled"


def test_an_ambiguous_prefix_is_a_409_listing_the_candidates(client: TestClient, engine: Engine) -> None:
    insert_job(engine, job_id=FIRST, name="first")
    insert_job(engine, job_id=SECOND, name="second")
    for response in (
        client.get("/jobs/abcdef01"),
        client.post("/jobs/abcdef01/cancel"),
        client.get("/jobs/abcdef01/metrics"),
    ):
        assert response.status_code == 409
        detail = response.json()["detail"]
        assert FIRST in detail and SECOND in detail and "ambiguous" in detail
    assert client.get("/jobs/abcdef011").json()["name"] == "second"
    assert client.get("/jobs").json()["items"][0]["status"] == "queued"


def test_an_ambiguous_prefix_lists_ten_candidates_and_says_there_are_more(
    client: TestClient, engine: Engine
) -> None:
    ids = [f"fedcba98{i:024x}" for i in range(12)]
    for job_id in ids:
        insert_job(engine, job_id=job_id)
    detail = client.get("/jobs/fedcba98").json()["detail"]
    assert [job_id in detail for job_id in ids] == [True] * 10 + [False] * 2
    assert "and more" in detail


@pytest.mark.parametrize("short", ["abcdef0", "ABCDEF01", "abcdef0g", "abcdef01-"])
def test_prefixes_shorter_than_8_or_not_lowercase_hex_are_404(
    client: TestClient, engine: Engine, short: str
) -> None:
    insert_job(engine, job_id=FIRST)
    assert client.get(f"/jobs/{short}").status_code == 404
    assert client.get(f"/jobs/{short}/metrics").status_code == 404


def test_other_owners_jobs_are_no_candidates(keyed: TestClient, engine: Engine) -> None:
    insert_job(engine, job_id=FIRST, owner="alice")
    insert_job(engine, job_id=SECOND, owner="bob")
    assert keyed.get("/jobs/abcdef01", headers=auth(ALICE)).json()["id"] == FIRST
    assert keyed.get("/jobs/abcdef01", headers=auth(BOB)).json()["id"] == SECOND
    assert keyed.get("/jobs/abcdef011", headers=auth(ALICE)).status_code == 404
    assert keyed.post("/jobs/abcdef011/cancel", headers=auth(ALICE)).status_code == 404
    assert keyed.get(f"/jobs/{SECOND}", headers=auth(ALICE)).status_code == 404
    assert keyed.get("/jobs/abcdef01", headers=auth(ADMIN)).status_code == 409


@pytest.mark.parametrize("odd", ["%00abcdef01", "abcdef01" + "0" * 30])
def test_ids_no_job_can_have_are_404(client: TestClient, odd: str) -> None:
    assert client.get(f"/jobs/{odd}").status_code == 404


def test_workers_attempt_routes_take_a_prefix_too(client: TestClient, engine: Engine) -> None:
    insert_job(engine, job_id=FIRST)
    response = client.get("/jobs/abcdef010/attempts/1/files/epoch-0001.pt")
    assert response.status_code == 404
    assert f"job {FIRST} lists no file" in response.json()["detail"]
    insert_job(engine, job_id=SECOND)
    assert client.get("/jobs/abcdef01/attempts/1/files/epoch-0001.pt").status_code == 409
