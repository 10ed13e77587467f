"""Tags at submit, and PATCH /jobs/{id}: name, tags, notes, and priority while queued."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import col, select

from app import queue
from app.db import read_session
from app.models import Job, JobCreate, JobTag
from app.queue.ordering import queue_order_at
from tests.factories import ONE_CPU
from tests.support.keys import ADMIN, ALICE, BOB, auth


def _tag_rows(engine: Engine, job_id: str) -> set[str]:
    with read_session(engine) as session:
        return set(session.exec(select(JobTag.tag).where(JobTag.job_id == job_id)))


def test_tags_given_at_submit_are_shown_and_stored_once_each_in_order(
    client: TestClient, engine: Engine
) -> None:
    response = client.post("/jobs", json={"tags": ["resnet", "baseline", "resnet", "lr 1e-3"]})
    assert response.status_code == 201
    job = response.json()
    assert job["tags"] == ["resnet", "baseline", "lr 1e-3"]
    assert client.get(f"/jobs/{job['id']}").json()["tags"] == job["tags"]
    assert _tag_rows(engine, job["id"]) == {"resnet", "baseline", "lr 1e-3"}
    assert client.post("/jobs", json={}).json()["tags"] == []


@pytest.mark.parametrize(
    "tags",
    [["a,b"], [""], [" padded"], ["tab\there"], ["x" * 65], [f"t{i}" for i in range(33)], "not-a-list", [1]],
)
def test_bad_tags_get_422(client: TestClient, tags: object) -> None:
    response = client.post("/jobs", json={"tags": tags})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "tags"]


def test_no_tags_leave_the_idempotency_hash_of_older_requests_unchanged() -> None:
    plain = JobCreate(name="n")
    assert queue.request_hash(JobCreate(name="n", tags=[])) == queue.request_hash(plain)
    assert queue.request_hash(JobCreate(name="n", tags=["a"])) != queue.request_hash(plain)
    # As it was computed before tags existed: the body's fields without them.
    legacy = JobCreate.model_validate({"name": "n"}).model_dump_json(
        exclude={
            "resources": True,
            "tags": True,
            "hyperparameters": set(queue.submission.LATER_HYPERPARAMETERS),
        }
    )
    assert '"tags"' not in legacy


def test_an_idempotent_retry_with_other_tags_is_a_conflict(client: TestClient) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/jobs", json={"tags": ["a"]}, headers=headers)
    assert client.post("/jobs", json={"tags": ["a"]}, headers=headers).json()["id"] == first.json()["id"]
    assert client.post("/jobs", json={"tags": ["b"]}, headers=headers).status_code == 409


def test_patch_replaces_tags_and_rewrites_their_rows(client: TestClient, engine: Engine) -> None:
    job_id = client.post("/jobs", json={"tags": ["old", "kept"]}).json()["id"]
    response = client.patch(f"/jobs/{job_id}", json={"tags": ["kept", "new"]})
    assert response.status_code == 200
    assert response.json()["tags"] == ["kept", "new"]
    assert _tag_rows(engine, job_id) == {"kept", "new"}
    assert client.patch(f"/jobs/{job_id}", json={"tags": []}).json()["tags"] == []
    assert _tag_rows(engine, job_id) == set()


def test_patch_sets_and_clears_name_and_notes_and_leaves_the_rest(client: TestClient) -> None:
    job_id = client.post("/jobs", json={"name": "first", "tags": ["t"]}).json()["id"]
    notes = "lr too high?\nTry 1e-4 next."
    changed = client.patch(f"/jobs/{job_id}", json={"name": "second", "notes": notes}).json()
    assert (changed["name"], changed["notes"], changed["tags"]) == ("second", notes, ["t"])
    assert client.get(f"/jobs/{job_id}").json()["notes"] == notes
    cleared = client.patch(f"/jobs/{job_id}", json={"notes": None, "name": None}).json()
    assert (cleared["name"], cleared["notes"], cleared["tags"]) == (None, None, ["t"])
    assert client.get("/jobs").json()["items"][0]["notes"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"status": "succeeded"},
        {"owner": "bob"},
        {"notes": "x" * 10_001},
        {"notes": "nul\x00"},
        {"name": ""},
        {"tags": None},
        {"priority": None},
        {"priority": "5"},
        {"priority": 1001},
    ],
)
def test_patch_refuses_bad_or_extra_fields_with_422(client: TestClient, body: dict) -> None:
    job_id = client.post("/jobs", json={}).json()["id"]
    response = client.patch(f"/jobs/{job_id}", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_patch_priority_of_a_queued_job_recomputes_its_queue_order(
    client: TestClient, engine: Engine
) -> None:
    first = client.post("/jobs", json={"name": "first"}).json()["id"]
    urgent = client.post("/jobs", json={"name": "urgent"}).json()["id"]
    response = client.patch(f"/jobs/{urgent}", json={"priority": 5})
    assert response.status_code == 200
    assert response.json()["priority"] == 5
    with read_session(engine) as session:
        job = session.get(Job, urgent)
        assert job is not None
        assert job.priority == 5
        assert _utc(job.queue_order_at) == queue_order_at(job.created_at, 5)
    # The claim follows: the job submitted second runs first.
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None and lease.job_id == urgent
    assert client.get(f"/jobs/{first}").json()["priority"] == 0
    client.patch(f"/jobs/{first}", json={"priority": -2})
    with read_session(engine) as session:
        job = session.get(Job, first)
        assert job is not None
        assert _utc(job.queue_order_at) == queue_order_at(job.created_at, -2)


def _utc(moment: datetime) -> datetime:
    """SQLite gives queue_order_at back without its zone (UTC, as written)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def test_patch_priority_of_a_running_job_is_a_409_saying_why(client: TestClient, engine: Engine) -> None:
    job_id = client.post("/jobs", json={"name": "running"}).json()["id"]
    assert queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU) is not None
    response = client.patch(f"/jobs/{job_id}", json={"priority": 3, "notes": "not applied"})
    assert response.status_code == 409
    assert "running" in response.json()["detail"] and "queued" in response.json()["detail"]
    shown = client.get(f"/jobs/{job_id}").json()
    assert (shown["priority"], shown["notes"]) == (0, None)
    # Sending back the priority it has is no change: the other fields still apply.
    assert client.patch(f"/jobs/{job_id}", json={"priority": 0, "notes": "ok"}).json()["notes"] == "ok"


def test_owners_edit_their_own_jobs_and_admin_any(keyed: TestClient, engine: Engine) -> None:
    job_id = keyed.post("/jobs", json={}, headers=auth(ALICE)).json()["id"]
    assert keyed.patch(f"/jobs/{job_id}", json={"notes": "bob's"}, headers=auth(BOB)).status_code == 404
    assert keyed.patch(f"/jobs/{job_id}", json={"notes": "mine"}, headers=auth(ALICE)).status_code == 200
    assert keyed.patch(f"/jobs/{job_id}", json={"tags": ["seen"]}, headers=auth(ADMIN)).status_code == 200
    shown = keyed.get(f"/jobs/{job_id}", headers=auth(ALICE)).json()
    assert (shown["notes"], shown["tags"]) == ("mine", ["seen"])
    assert keyed.patch("/jobs/0123456789abcdef", json={}, headers=auth(ALICE)).status_code == 404
    with read_session(engine) as session:
        assert session.exec(select(col(Job.owner))).all() == ["alice"]
