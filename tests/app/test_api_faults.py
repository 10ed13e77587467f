from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app import queue
from app.contract import FailureReason
from app.main import create_app
from app.settings import Settings
from tests.factories import ONE_CPU, submit_job
from tests.support.polling import wait_for


def test_cancel_ends_a_queued_job(client: TestClient) -> None:
    job_id = client.post("/jobs", json={}).json()["id"]
    response = client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None


def test_cancelling_an_ended_job_is_409_and_unknown_is_404(client: TestClient) -> None:
    job_id = client.post("/jobs", json={}).json()["id"]
    client.post(f"/jobs/{job_id}/cancel")
    again = client.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]
    assert client.post("/jobs/nope/cancel").status_code == 404


def test_a_retried_submit_with_the_same_idempotency_key_returns_the_same_job(client: TestClient) -> None:
    body = {"name": "once", "hyperparameters": {"epochs": 2}}
    first = client.post("/jobs", json=body, headers={"Idempotency-Key": "retry-1"})
    again = client.post("/jobs", json=body, headers={"Idempotency-Key": "retry-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert len(client.get("/jobs").json()["items"]) == 1


def test_the_same_idempotency_key_with_another_body_is_409(client: TestClient) -> None:
    client.post("/jobs", json={"name": "a"}, headers={"Idempotency-Key": "k"})
    response = client.post("/jobs", json={"name": "b"}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 409
    assert "different request body" in response.json()["detail"]


def test_idempotency_keys_must_be_short_printable_text(client: TestClient) -> None:
    assert client.post("/jobs", json={}, headers={"Idempotency-Key": "x" * 300}).status_code == 422
    assert client.post("/jobs", json={}, headers={"Idempotency-Key": "with space"}).status_code == 422


def test_job_limits_are_validated_and_shown(client: TestClient) -> None:
    response = client.post("/jobs", json={"max_attempts": 5, "max_runtime_seconds": 60})
    assert response.status_code == 201
    assert (response.json()["max_attempts"], response.json()["max_runtime_seconds"]) == (5, 60)
    for bad in ({"max_attempts": 0}, {"max_attempts": 100}, {"max_runtime_seconds": 0}):
        assert client.post("/jobs", json=bad).status_code == 422


def test_dry_run_shows_the_job_limits_too(client: TestClient) -> None:
    response = client.post("/jobs?dry_run=true", json={"max_runtime_seconds": 30})
    assert response.status_code == 200
    assert response.json()["max_attempts"] == 3
    assert response.json()["max_runtime_seconds"] == 30


def test_a_running_job_shows_the_reason_of_its_last_lost_attempt(client: TestClient, engine: Engine) -> None:
    job_id = client.post("/jobs", json={}).json()["id"]
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    queue.fail(engine, lease=lease, reason=FailureReason.out_of_memory, message="killed", runtime_seconds=3)
    shown = client.get(f"/jobs/{job_id}").json()
    assert shown["status"] == "queued"
    assert shown["error"] == {"reason": "out_of_memory", "message": "killed"}
    assert shown["runtime_seconds"] == 3


def test_the_api_takes_back_a_job_whose_worker_died_even_with_no_worker_running(
    settings: Settings, engine: Engine
) -> None:
    job = submit_job(engine)
    assert queue.claim(engine, worker_id="dead", lease_seconds=0.2, capabilities=ONE_CPU) is not None
    fast = settings.model_copy(update={"lease_seconds": 0.4})
    with TestClient(create_app(fast)) as client:
        wait_for(
            lambda: client.get(f"/jobs/{job.id}").json()["status"] == "queued",
            timeout_s=10,
            what="the API's reaper to requeue the job",
        )
