"""Several machines on PostgreSQL: workers on two "hosts", each with its own artifacts folder and
no setting that names the API's, send their checkpoints and logs to the API over HTTP."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.conftest import COUNTING_LEASE_SECONDS, Service, running_service
from tests.e2e.jobs import LONG_JOB, TINY_JOB
from tests.support.databases import fresh_database
from tests.support.polling import wait_for
from tests.support.processes import ServiceProcess, start_worker
from worker.supervisor import LOG_UPLOAD_INTERVAL_S

WORKER_KEY = "worker-key-" + "k" * 16
USER_KEY = "user-key-" + "u" * 16
FOUR_EPOCHS = {**LONG_JOB, "epochs": 4}


class Hosts:
    """The API (its own artifacts folder) and worker processes on hosts that share no folder with it."""

    def __init__(self, service: Service, root: Path) -> None:
        self.service = service
        self.root = root

    def artifacts(self, host: str) -> Path:
        return self.root / host / "artifacts"

    def start_worker(self, host: str, *args: str, key: str = WORKER_KEY) -> ServiceProcess:
        env = {
            **self.service.env,
            "TRAINQ_ARTIFACTS_DIR": str(self.artifacts(host)),
            "TRAINQ_DATA_DIR": str(self.root / host / "data"),
            "TRAINQ_API_URL": str(self.service.http.base_url),
            "TRAINQ_API_KEY": key,
        }
        env.pop("TRAINQ_API_KEYS")
        number = len(self.service.workers)
        worker = start_worker(env, self.root / f"{host}-worker-{number}.log", *args)
        self.service.workers.append(worker)
        return worker


@contextmanager
def api_host(root: Path, **env: str) -> Iterator[Hosts]:
    """The API on a fresh PostgreSQL database, with a worker key and a user key."""
    with (
        fresh_database() as database_url,
        running_service(
            root / "api",
            api_key=USER_KEY,
            TRAINQ_DATABASE_URL=database_url,
            TRAINQ_API_KEYS=f"worker:{WORKER_KEY},user:{USER_KEY}",
            **env,
        ) as service,
    ):
        yield Hosts(service, root)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    with api_host(tmp_path) as running:
        yield running


def downloaded_sha256(service: Service, url: str) -> str:
    response = service.http.get(url)
    assert response.status_code == 200, response.text
    return hashlib.sha256(response.content).hexdigest()


def test_two_hosts_drain_two_hundred_jobs_each_run_exactly_once(tmp_path: Path) -> None:
    with api_host(tmp_path, TRAINQ_LEASE_SECONDS=COUNTING_LEASE_SECONDS) as hosts:
        _drain_two_hundred_jobs(hosts)


def _drain_two_hundred_jobs(hosts: Hosts) -> None:
    service = hosts.service
    job_ids = [service.submit(f"tiny-{i}", **TINY_JOB) for i in range(200)]
    workers = [hosts.start_worker(host, "--burst") for host in ("a", "a", "b", "b")]
    for worker in workers:
        assert worker.wait(timeout_s=600) == 0, worker.log()[-3000:]

    jobs = [service.job(job_id) for job_id in job_ids]
    assert [job["status"] for job in jobs] == ["succeeded"] * 200
    assert [job["attempts"] for job in jobs] == [1] * 200
    assert all([(row["epoch"], row["attempt"]) for row in job["metrics"]] == [(1, 1)] for job in jobs)
    for job in jobs:
        (checkpoint,) = job["checkpoints"]
        assert downloaded_sha256(service, checkpoint["url"]) == checkpoint["sha256"]
    # Both hosts took part, and each kept nothing: what they trained is on the API's side.
    assert all("claimed by" in worker.log() for worker in workers)
    for host in ("a", "b"):
        assert [p for p in hosts.artifacts(host).rglob("*") if p.is_file()] == []


def test_a_job_whose_host_dies_is_resumed_on_the_other_host_from_the_uploaded_checkpoint(
    hosts: Hosts,
) -> None:
    service = hosts.service
    first = hosts.start_worker("a")
    job_id = service.submit("moved", **FOUR_EPOCHS, export=["safetensors", "torchscript"])
    before = service.wait_for_job(job_id, lambda job: len(job["checkpoints"]) >= 1, "a first checkpoint")
    first.process.kill()
    first.wait(timeout_s=10)
    hosts.start_worker("b")

    job = service.wait_until_final(job_id, timeout_s=300)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    assert [row["epoch"] for row in job["metrics"]] == [1, 2, 3, 4]
    # Host b continued from host a's checkpoint (fetched from the API), not from scratch.
    resumed_from = {row["epoch"] for row in job["metrics"] if row["attempt"] == 1}
    assert resumed_from >= {c["epoch"] for c in before["checkpoints"]}
    b_log = service.workers[-1].log()
    assert "resume from" in b_log and "resume-" in b_log
    for checkpoint in job["checkpoints"]:
        assert downloaded_sha256(service, checkpoint["url"]) == checkpoint["sha256"]
    # Both exports reached the API, neither removed by the upload after it as an unlisted file.
    assert [export["name"] for export in job["exports"]] == ["model.safetensors", "model.pt"]
    for export in job["exports"]:
        assert downloaded_sha256(service, export["url"]) == export["sha256"]
    logs = service.http.get(f"/jobs/{job_id}/logs")
    assert logs.status_code == 200 and "resumed from" in logs.text


def test_a_worker_whose_key_the_api_refuses_does_not_start(hosts: Hosts) -> None:
    job_id = hosts.service.submit("waits", **TINY_JOB)
    worker = hosts.start_worker("a", key=USER_KEY)
    assert worker.wait(timeout_s=60) == 2
    assert "the API answered 403" in worker.log()
    assert "owner 'worker'" in worker.log()
    assert hosts.service.job(job_id)["status"] == "queued"


def test_a_job_handed_back_by_a_worker_on_the_apis_host_resumes_on_another_host(hosts: Hosts) -> None:
    service = hosts.service
    local = service.start_worker()  # shares the API's folder: no uploads
    job_id = service.submit("handed-over", **FOUR_EPOCHS)
    service.wait_for_job(job_id, lambda job: len(job["metrics"]) >= 1, "a first epoch")
    local.stop()
    handed_back = service.wait_for_job(job_id, lambda job: job["status"] == "queued", "the hand-back")
    assert handed_back["attempts"] == 1
    hosts.start_worker("b")

    job = service.wait_until_final(job_id, timeout_s=300)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    assert [row["epoch"] for row in job["metrics"]] == [1, 2, 3, 4]
    assert "resume-resume.pt" in service.workers[-1].log()


def test_with_the_default_lease_a_remote_workers_log_reaches_the_api_while_it_trains(
    tmp_path: Path,
) -> None:
    with api_host(tmp_path, TRAINQ_LEASE_SECONDS="60") as hosts:
        service = hosts.service
        worker = hosts.start_worker("a")
        job_id = service.submit("long", **{**LONG_JOB, "epochs": 200})
        service.wait_for_job(job_id, lambda job: job["status"] == "running", "the job to start")
        started = time.monotonic()

        def log_uploaded_and_past_the_timers() -> bool:
            assert worker.process.poll() is None, worker.log()[-3000:]
            log = service.http.get(f"/jobs/{job_id}/logs")
            return (
                log.status_code == 200
                and "epoch" in log.text
                and time.monotonic() - started > LOG_UPLOAD_INTERVAL_S + 2
            )

        wait_for(
            log_uploaded_and_past_the_timers, timeout_s=60, interval_s=0.2, what="the log while training"
        )
        assert service.job(job_id)["status"] == "running"
        assert service.http.post(f"/jobs/{job_id}/cancel").status_code == 200
        assert service.wait_until_final(job_id)["status"] == "cancelled"
        assert worker.process.poll() is None


def test_a_host_that_shares_no_folder_downloads_the_checkpoint_init_from_names(hosts: Hosts) -> None:
    service = hosts.service
    source = service.submit("source", **TINY_JOB)
    assert hosts.start_worker("a", "--burst").wait(timeout_s=120) == 0
    assert service.job(source)["status"] == "succeeded"
    warm = service.submit("warm", **TINY_JOB, init_from={"job": source, "checkpoint": "latest"})
    worker = hosts.start_worker("b", "--burst")
    assert worker.wait(timeout_s=120) == 0, worker.log()[-3000:]
    job = service.job(warm)
    assert job["status"] == "succeeded", job
    assert job["warm_start"] == {"job": source, "epoch": 1, "loaded": 4, "new": []}
    assert [p for p in hosts.artifacts("b").rglob("*") if p.is_file()] == []
