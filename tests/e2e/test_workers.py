"""Workers that say what they have: a real worker registers, claims only what it can serve, and
leaves the registry when it stops."""

from __future__ import annotations

import signal
from datetime import datetime

from tests.e2e.conftest import Service
from tests.support.polling import wait_for


def submit(service: Service, name: str, labels: list[str]) -> str:
    body = {"name": name, "hyperparameters": {"epochs": 1}, "resources": {"labels": labels}}
    response = service.http.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_labelled_worker_registers_and_claims_only_the_jobs_its_labels_allow(service: Service) -> None:
    worker = service.start_worker(TRAINQ_WORKER_LABELS="fast", TRAINQ_WORKER_DEVICES="cpu:2")

    def registered() -> list[dict] | None:
        listed = service.http.get("/workers").json()
        return listed or None

    (listed,) = wait_for(registered, timeout_s=60, what="the worker to appear in GET /workers")
    assert listed["pid"] == worker.pid
    assert (listed["labels"], listed["cpu_devices"], listed["workers_on_host"]) == (["fast"], 2, 1)
    assert datetime.fromisoformat(listed["last_heartbeat_at"]) >= datetime.fromisoformat(listed["started_at"])

    needs_a100 = submit(service, "needs-a100", ["gpu-a100"])
    fast = submit(service, "fast", ["fast"])
    assert service.wait_until_final(fast)["status"] == "succeeded"

    # The worker is idle now and the older job is still there: it was stepped over, not blocked on.
    waiting = service.job(needs_a100)
    assert (waiting["status"], waiting["attempts"]) == ("queued", 0)
    assert waiting["waiting_reason"] == (
        f"no live worker has 1 device for device auto (cuda on a worker with a GPU, else cpu) with labels "
        f"[gpu-a100] (1 live worker: {listed['id']} has cuda:{listed['cuda_devices']} cpu:2 labels [fast])"
    )
    beat = datetime.fromisoformat(listed["last_heartbeat_at"])
    wait_for(
        lambda: datetime.fromisoformat(service.http.get("/workers").json()[0]["last_heartbeat_at"]) > beat,
        timeout_s=30,
        what="a heartbeat while idle",
    )

    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout_s=60) == 0, worker.log()
    assert service.http.get("/workers").json() == []
    assert service.job(needs_a100)["waiting_reason"] == "no worker is running"
