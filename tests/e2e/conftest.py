from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import torch
from playwright.sync_api import Browser, Page

from tests.support.browser import chromium, new_page
from tests.support.polling import wait_for
from tests.support.processes import ServiceProcess, service_env, start_api, start_worker


@dataclass
class Service:
    """A real uvicorn API on a temporary SQLite file, and the workers a test starts beside it."""

    state_dir: Path
    env: dict[str, str]
    http: httpx.Client
    api: ServiceProcess
    workers: list[ServiceProcess] = field(default_factory=list)

    def start_worker(self, *args: str, **extra_env: str) -> ServiceProcess:
        """`extra_env`: this worker's own settings (e.g. TRAINQ_WORKER_LABELS)."""
        log = self.state_dir / f"worker-{len(self.workers)}.log"
        worker = start_worker({**self.env, **extra_env}, log, *args)
        self.workers.append(worker)
        return worker

    def submit(self, name: str | None = None, **hyperparameters: object) -> str:
        response = self.http.post("/jobs", json={"name": name, "hyperparameters": hyperparameters})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict:
        response = self.http.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_for_job(
        self, job_id: str, condition: Callable[[dict], bool], what: str, timeout_s: float = 120
    ) -> dict:
        def check() -> dict | None:
            job = self.job(job_id)
            return job if condition(job) else None

        try:
            return wait_for(check, timeout_s=timeout_s, interval_s=0.05, what=what)
        except TimeoutError:
            logs = "\n".join(worker.log()[-4000:] for worker in self.workers)
            raise AssertionError(f"job {job_id}: {what} did not happen: {self.job(job_id)}\n{logs}") from None

    def wait_until_final(self, job_id: str, timeout_s: float = 120) -> dict:
        return self.wait_for_job(
            job_id, lambda job: job["status"] in {"succeeded", "failed", "cancelled"}, "the end", timeout_s
        )

    def checkpoint_state(self, job_id: str, ref: str) -> dict:
        response = self.http.get(f"/jobs/{job_id}/checkpoints/{ref}")
        assert response.status_code == 200, response.text
        path = self.state_dir / f"{job_id}-{ref}.pt"
        path.write_bytes(response.content)
        return dict(torch.load(path, weights_only=True))


# Short enough that a lost worker's job comes back within seconds, long enough
# for a heartbeat every half second on a busy 2-core machine.
TEST_LEASE_SECONDS = "2"
# For the tests that count how often each job ran: a lease no stall of a slow, shared machine
# outlasts, so that a job runs twice only if two claims raced (with 2 s, a worker starved of
# the CPU for a second and a half lost its job to the reaper: a second attempt).
COUNTING_LEASE_SECONDS = "60"


@contextmanager
def running_service(state_dir: Path, api_key: str | None = None, **extra_env: str) -> Iterator[Service]:
    """A live API on a temporary SQLite file, stopped with its workers on exit; `api_key` goes
    on the test's own requests, `extra_env` to the processes (e.g. TRAINQ_API_KEYS)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    env = service_env(state_dir, **{"TRAINQ_LEASE_SECONDS": TEST_LEASE_SECONDS, **extra_env})
    api, base_url = start_api(state_dir, env, state_dir)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=base_url, timeout=10, headers=headers) as http:
        running = Service(state_dir=state_dir, env=env, http=http, api=api)
        try:
            yield running
        finally:
            for worker in running.workers:
                worker.stop()
            api.stop()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with running_service(tmp_path) as running:
        yield running


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Anonymous, with one worker; shared by the modules that use it (each submits its own jobs)."""
    with running_service(tmp_path_factory.mktemp("live")) as running:
        running.start_worker()
        yield running


@pytest.fixture(scope="session")
def finished_job(live: Service) -> dict:
    """A small digits job that succeeded on `live`, for tests that only read what it left."""
    job = live.wait_until_final(live.submit("digits-cli", dataset="digits", epochs=3, batch_size=64))
    assert job["status"] == "succeeded", job
    return job


# One browser per test module, a fresh page per test.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with new_page(browser) as opened:
        yield opened
