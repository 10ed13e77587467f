"""The worker registry, GET /workers and a queued job's waiting_reason."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app import queue
from app.db import read_session
from app.queue import workers
from app.queue.clock import database_time
from app.resources import Capabilities
from tests.support.keys import ADMIN, ALICE

LEASE_S = 60.0


def card(worker_id: str, capabilities: Capabilities, host: str = "gpu-box") -> workers.WorkerCard:
    return workers.WorkerCard(
        id=worker_id,
        host=host,
        pid=int(worker_id.rsplit(":", 1)[-1]),
        capabilities=capabilities,
        memory_bytes=64 * 2**30,
        version="0.1.0",
    )


def database_clock(engine: Engine) -> datetime:
    with read_session(engine) as session:
        return database_time(session)


def as_utc(text: str) -> datetime:
    """A time the API wrote (SQLite gives it back without a zone: it is UTC)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_get_workers_lists_registered_workers_with_heartbeats_by_the_database_clock(
    client: TestClient, engine: Engine
) -> None:
    before = database_clock(engine)
    workers.register(
        engine, card=card("gpu-box:11", Capabilities(4, 32, frozenset({"a100"}))), lease_seconds=LEASE_S
    )
    workers.register(engine, card=card("gpu-box:12", Capabilities(0, 32)), lease_seconds=LEASE_S)
    workers.register(
        engine, card=card("cpu-box:13", Capabilities(0, 8), host="cpu-box"), lease_seconds=LEASE_S
    )
    registered = database_clock(engine)
    workers.heartbeat(
        engine, card=card("gpu-box:11", Capabilities(4, 32, frozenset({"a100"}))), lease_seconds=LEASE_S
    )
    after = database_clock(engine)

    listed = client.get("/workers").json()

    assert [w["id"] for w in listed] == ["gpu-box:11", "gpu-box:12", "cpu-box:13"]
    first = listed[0]
    assert {k: first[k] for k in ("host", "pid", "cuda_devices", "cpu_devices", "labels", "version")} == {
        "host": "gpu-box",
        "pid": 11,
        "cuda_devices": 4,
        "cpu_devices": 32,
        "labels": ["a100"],
        "version": "0.1.0",
    }
    assert first["memory_bytes"] == 64 * 2**30  # past 32 bits
    assert [w["workers_on_host"] for w in listed] == [2, 2, 1]
    assert [w["job_id"] for w in listed] == [None, None, None]
    assert before <= as_utc(first["started_at"]) <= registered
    assert registered <= as_utc(first["last_heartbeat_at"]) <= after
    assert as_utc(listed[1]["last_heartbeat_at"]) <= registered


def test_a_worker_whose_heartbeat_is_too_old_is_not_live_and_a_heartbeat_brings_it_back(
    client: TestClient, engine: Engine
) -> None:
    stale = card("gpu-box:21", Capabilities(1, 8))
    # A negative lease puts its deadline in the past at once: a worker that stopped beating.
    workers.register(engine, card=stale, lease_seconds=-1.0)
    assert client.get("/workers").json() == []
    workers.register(engine, card=card("gpu-box:22", Capabilities(1, 8)), lease_seconds=LEASE_S)
    assert [w["id"] for w in client.get("/workers").json()] == ["gpu-box:22"]
    # The stale row was removed by that registration; its worker's next heartbeat registers it again.
    workers.heartbeat(engine, card=stale, lease_seconds=LEASE_S)
    assert sorted(w["id"] for w in client.get("/workers").json()) == ["gpu-box:21", "gpu-box:22"]
    workers.deregister(engine, worker_id="gpu-box:22")
    assert [w["id"] for w in client.get("/workers").json()] == ["gpu-box:21"]


def test_get_workers_shows_the_job_each_worker_runs(client: TestClient, engine: Engine) -> None:
    busy = card("gpu-box:31", Capabilities(0, 4))
    workers.register(engine, card=busy, lease_seconds=LEASE_S)
    job_id = client.post("/jobs", json={}).json()["id"]
    assert queue.claim(engine, worker_id=busy.id, lease_seconds=LEASE_S, capabilities=busy.capabilities)
    assert client.get("/workers").json()[0]["job_id"] == job_id


def test_only_admin_may_list_workers(keyed: TestClient, engine: Engine) -> None:
    workers.register(engine, card=card("gpu-box:41", Capabilities(1, 8)), lease_seconds=LEASE_S)
    refused = keyed.get("/workers", headers={"Authorization": f"Bearer {ALICE}"})
    assert refused.status_code == 403
    assert "only the owner 'admin' may read it" in refused.json()["detail"]
    allowed = keyed.get("/workers", headers={"Authorization": f"Bearer {ADMIN}"})
    assert [w["id"] for w in allowed.json()] == ["gpu-box:41"]


def test_a_queued_job_no_live_worker_could_run_says_why_until_a_capable_worker_registers(
    client: TestClient, engine: Engine
) -> None:
    body = {"hyperparameters": {"device": "cuda"}, "resources": {"devices": 2, "labels": ["a100"]}}
    created = client.post("/jobs", json=body).json()
    assert created["waiting_reason"] == "no worker is running"
    job_id = created["id"]

    workers.register(
        engine, card=card("gpu-box:51", Capabilities(1, 8, frozenset({"a100"}))), lease_seconds=LEASE_S
    )
    workers.register(engine, card=card("gpu-box:52", Capabilities(4, 8)), lease_seconds=LEASE_S)
    assert client.get(f"/jobs/{job_id}").json()["waiting_reason"] == (
        "no live worker has 2 cuda devices with labels [a100] (2 live workers: "
        "gpu-box:51 has cuda:1 cpu:8 labels [a100]; gpu-box:52 has cuda:4 cpu:8)"
    )
    # A dead worker that could have run it does not count.
    capable = card("gpu-box:53", Capabilities(2, 8, frozenset({"a100", "fast"})))
    workers.register(engine, card=capable, lease_seconds=-1.0)
    assert client.get(f"/jobs/{job_id}").json()["waiting_reason"].startswith("no live worker has")

    workers.register(engine, card=capable, lease_seconds=LEASE_S)
    assert client.get(f"/jobs/{job_id}").json()["waiting_reason"] is None
    # The list stays cheap: it never carries a waiting_reason.
    assert "waiting_reason" not in client.get("/jobs").json()["items"][0]


def test_only_queued_jobs_have_a_waiting_reason(client: TestClient, engine: Engine) -> None:
    job_id = client.post("/jobs", json={}).json()["id"]
    assert queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=Capabilities(0, 1))
    assert client.get(f"/jobs/{job_id}").json()["waiting_reason"] is None
    assert client.post(f"/jobs/{job_id}/cancel").json()["waiting_reason"] is None


def test_a_waiting_reason_for_device_auto_names_both_kinds_and_lists_at_most_five_workers(
    client: TestClient, engine: Engine
) -> None:
    for pid in range(61, 68):
        workers.register(engine, card=card(f"box:{pid}", Capabilities(0, 2)), lease_seconds=LEASE_S)
    job = client.post("/jobs", json={"resources": {"devices": 3}}).json()
    reason = job["waiting_reason"]
    assert reason.startswith(
        "no live worker has 3 devices for device auto (cuda on a worker with a GPU, else cpu) (7 live workers: "
    )
    assert reason.endswith("box:65 has cuda:0 cpu:2; and 2 more)")
