"""A queued job's place: queue_position (1 = next) among the jobs its workers could take instead,
and running_ahead (jobs running on the live workers that could run it), through the API too."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app import queue
from app.db import read_session
from app.hyperparameters import Hyperparameters
from app.models import Job, JobCreate
from app.queue import workers
from app.resources import Capabilities, Resources
from app.schemas import QueuePlace
from tests.factories import ONE_CPU, submit_job
from tests.support.query_plans import query_plan, recorded_statements

LEASE_S = 60.0
GPU = Capabilities(cuda_devices=1, cpu_devices=1, labels=frozenset({"a100"}))
CPU = Capabilities(cuda_devices=0, cpu_devices=2, labels=frozenset({"fast"}))


def place(engine: Engine, job_id: str) -> QueuePlace | None:
    with read_session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return queue.queue_place(session, job=job)


def positions(engine: Engine, *job_ids: str) -> list[int | None]:
    return [None if (p := place(engine, job_id)) is None else p.position for job_id in job_ids]


def submit(engine: Engine, *, device: str = "auto", labels: tuple[str, ...] = ()) -> str:
    job_in = JobCreate(
        hyperparameters=Hyperparameters(device=device),  # type: ignore[arg-type]
        resources=Resources(labels=list(labels)),
    )
    job, _ = queue.submit(engine, job_in=job_in)
    return job.id


def register(engine: Engine, worker_id: str, capabilities: Capabilities) -> None:
    card = workers.WorkerCard(
        id=worker_id, host="h", pid=1, capabilities=capabilities, memory_bytes=2**34, version="test"
    )
    workers.register(engine, card=card, lease_seconds=LEASE_S)


def claim(engine: Engine, worker_id: str, capabilities: Capabilities = ONE_CPU) -> str:
    lease = queue.claim(engine, worker_id=worker_id, lease_seconds=LEASE_S, capabilities=capabilities)
    assert lease is not None
    return lease.job_id


def test_queue_position_counts_the_queued_jobs_ahead_and_moves_up_as_they_are_claimed_or_cancelled(
    engine: Engine,
) -> None:
    first = submit_job(engine, "first").id
    second = submit_job(engine, "second").id
    urgent = submit_job(engine, "urgent", priority=3).id
    assert positions(engine, urgent, first, second) == [1, 2, 3]
    assert claim(engine, "w1") == urgent
    assert positions(engine, urgent, first, second) == [None, 1, 2]
    queue.cancel(engine, job_id=first)
    assert positions(engine, first, second) == [None, 1]


def test_queue_position_counts_only_jobs_that_a_worker_able_to_run_the_job_could_take_instead(
    engine: Engine,
) -> None:
    gpu_only = submit(engine, labels=("a100",))
    cpu_only = submit(engine, labels=("fast",))
    either = submit(engine, device="cpu")
    # No live worker yet: every queued job ahead counts.
    assert positions(engine, gpu_only, cpu_only, either) == [1, 2, 3]
    register(engine, "gpu", GPU)
    register(engine, "cpu", CPU)
    # gpu_only and cpu_only never compete; `either` waits behind both.
    assert positions(engine, gpu_only, cpu_only, either) == [1, 1, 3]


def test_running_ahead_counts_the_running_jobs_of_live_workers_that_could_run_the_job(
    engine: Engine,
) -> None:
    register(engine, "gpu", GPU)
    register(engine, "cpu", CPU)
    for _ in range(3):
        submit_job(engine)
    claim(engine, "gpu", GPU)
    claim(engine, "cpu", CPU)
    claim(engine, "ghost")  # a worker that never registered (or stopped being live): not counted
    gpu_only = submit(engine, labels=("a100",))
    either = submit(engine, device="cpu")
    nobody = submit(engine, labels=("tpu",))
    assert place(engine, gpu_only) == QueuePlace(position=1, running_ahead=1)
    assert place(engine, either) == QueuePlace(position=2, running_ahead=2)
    assert place(engine, nobody) == QueuePlace(position=3, running_ahead=0)


def test_the_position_count_walks_the_status_queue_order_index(engine: Engine) -> None:
    register(engine, "cpu", CPU)
    for _ in range(3):
        submit_job(engine)
    last = submit_job(engine).id
    with recorded_statements(engine) as statements:
        assert positions(engine, last) == [4]
    (statement, parameters), *_ = [(s, p) for s, p in statements if "count(" in s and "queue_order_at" in s]
    text = query_plan(engine, statement, parameters)
    assert "ix_jobs_status_queue_order" in text, text
    assert "SCAN jobs" not in text and "Seq Scan on jobs" not in text, text


def test_a_submitted_priority_shows_in_get_and_the_list_and_the_queue_position_in_get(
    client: TestClient,
) -> None:
    older = client.post("/jobs", json={}).json()
    assert (older["priority"], older["queue_position"], older["running_ahead"]) == (0, 1, 0)
    response = client.post("/jobs", json={"priority": 7})
    assert response.status_code == 201
    assert (response.json()["priority"], response.json()["queue_position"]) == (7, 1)
    shown = client.get(f"/jobs/{response.json()['id']}").json()
    assert (shown["priority"], shown["queue_position"], shown["running_ahead"]) == (7, 1, 0)
    assert client.get(f"/jobs/{older['id']}").json()["queue_position"] == 2
    listed = {job["id"]: job["priority"] for job in client.get("/jobs").json()["items"]}
    assert listed == {older["id"]: 0, response.json()["id"]: 7}
    client.post(f"/jobs/{older['id']}/cancel")
    cancelled = client.get(f"/jobs/{older['id']}").json()
    assert (cancelled["priority"], cancelled["queue_position"], cancelled["running_ahead"]) == (0, None, None)


@pytest.mark.parametrize("priority", ["3", True, 1.5, None, 1001, -1001])
def test_a_priority_that_is_not_an_integer_in_range_is_a_422(client: TestClient, priority: object) -> None:
    response = client.post("/jobs", json={"priority": priority})
    assert response.status_code == 422
    assert ["body", "priority"] in [error["loc"] for error in response.json()["detail"]]
