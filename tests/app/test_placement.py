"""Placement: a worker claims only jobs it can serve, in the claim statement itself."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import select

from app import queue
from app.db import read_session
from app.hyperparameters import Hyperparameters
from app.models import Job, JobCreate, JobStatus
from app.queue import workers
from app.resources import Capabilities, Resources
from tests.factories import ONE_CPU
from tests.support.query_plans import query_plan, recorded_statements

LEASE_S = 60.0
LABELS = ["a100", "fast", "t4", "spot"]
WORKERS = {
    "gpu4": Capabilities(cuda_devices=4, cpu_devices=16, labels=frozenset({"a100", "fast"})),
    "gpu1": Capabilities(cuda_devices=1, cpu_devices=8, labels=frozenset({"t4"})),
    "cpu2": Capabilities(cuda_devices=0, cpu_devices=2, labels=frozenset({"fast"})),
    "cpu32": Capabilities(cuda_devices=0, cpu_devices=32),
}


@dataclass(frozen=True)
class Asked:
    devices: int
    kind: str
    labels: frozenset[str]


def serves(worker: Capabilities, job: Asked) -> bool:
    """The placement rule, written out again independently of app.resources."""
    if not job.labels <= worker.labels:
        return False
    if job.kind == "cuda" or (job.kind == "auto" and worker.cuda_devices > 0):
        return job.devices <= worker.cuda_devices
    return job.devices <= worker.cpu_devices


def submit(engine: Engine, *, devices: int = 1, device: str = "auto", labels: tuple[str, ...] = ()) -> str:
    job_in = JobCreate(
        hyperparameters=Hyperparameters(device=device),  # type: ignore[arg-type]
        resources=Resources(devices=devices, labels=list(labels)),
    )
    job, _ = queue.submit(engine, job_in=job_in)
    return job.id


def register_all(engine: Engine) -> None:
    for name, capabilities in WORKERS.items():
        card = workers.WorkerCard(
            id=name, host="h", pid=1, capabilities=capabilities, memory_bytes=2**34, version="test"
        )
        workers.register(engine, card=card, lease_seconds=LEASE_S)


def test_random_jobs_go_only_to_workers_that_can_serve_them_and_every_servable_job_is_claimed(
    engine: Engine,
) -> None:
    rng = random.Random(14)
    asked: dict[str, Asked] = {}
    for _ in range(200):
        job = Asked(
            devices=rng.choice([1, 1, 1, 2, 4, 8, 16, 64]),
            kind=rng.choice(["auto", "cpu", "cuda"]),
            labels=frozenset(rng.sample(LABELS, rng.choice([0, 0, 1, 1, 2]))),
        )
        asked[submit(engine, devices=job.devices, device=job.kind, labels=tuple(job.labels))] = job
    register_all(engine)

    claimed: dict[str, str] = {}
    hungry = list(WORKERS)
    while hungry:
        name = rng.choice(hungry)
        lease = queue.claim(engine, worker_id=name, lease_seconds=LEASE_S, capabilities=WORKERS[name])
        if lease is None:
            hungry.remove(name)
            continue
        job = asked[lease.job_id]
        assert serves(WORKERS[name], job), f"{name} claimed {job}"
        assert lease.devices == job.devices
        assert lease.device_kind == WORKERS[name].resolve(job.kind)  # type: ignore[arg-type]
        claimed[lease.job_id] = name

    left = {job_id: job for job_id, job in asked.items() if job_id not in claimed}
    assert not [job for job in left.values() if any(serves(w, job) for w in WORKERS.values())]
    # Both kinds of outcome happened, and every worker took part.
    assert len(claimed) > 100 and len(left) > 10
    assert set(claimed.values()) == set(WORKERS)
    with read_session(engine) as session:
        rows = session.exec(select(Job)).all()
        assert {row.id for row in rows if row.status == JobStatus.queued} == set(left)
        # What is left says why, from the same rule applied to the live workers.
        assert all(queue.waiting_reason(session, job=row) for row in rows if row.id in left)


def test_has_queued_is_false_for_a_worker_that_can_serve_none_of_the_queued_jobs(engine: Engine) -> None:
    submit(engine, devices=2, device="cuda")
    submit(engine, labels=("spot",))
    submit(engine, devices=4, device="cpu")
    assert not queue.has_queued(engine, capabilities=ONE_CPU)
    assert queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU) is None
    assert queue.has_queued(engine, capabilities=Capabilities(cuda_devices=2, cpu_devices=1))
    assert queue.has_queued(engine, capabilities=Capabilities(0, 1, frozenset({"spot", "x"})))


def test_a_job_no_worker_can_serve_does_not_hold_up_younger_jobs(engine: Engine) -> None:
    submit(engine, labels=("a100",))
    younger = submit(engine)
    lease = queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU)
    assert lease is not None and lease.job_id == younger


def test_auto_runs_on_cuda_where_a_worker_has_a_gpu_and_on_the_cpu_elsewhere(engine: Engine) -> None:
    two = submit(engine, devices=2)
    gpu1 = Capabilities(cuda_devices=1, cpu_devices=64)
    assert queue.claim(engine, worker_id="gpu1", lease_seconds=LEASE_S, capabilities=gpu1) is None
    lease = queue.claim(engine, worker_id="cpu2", lease_seconds=LEASE_S, capabilities=Capabilities(0, 2))
    assert lease is not None and (lease.job_id, lease.devices, lease.device_kind) == (two, 2, "cpu")
    submit(engine, devices=2)
    lease = queue.claim(engine, worker_id="gpu2", lease_seconds=LEASE_S, capabilities=Capabilities(2, 1))
    assert lease is not None and (lease.devices, lease.device_kind) == (2, "cuda")


def test_the_label_check_probes_job_labels_by_its_key_inside_the_claim_statement(engine: Engine) -> None:
    submit(engine, labels=("fast",))
    with recorded_statements(engine) as statements:
        lease = queue.claim(
            engine, worker_id="w", lease_seconds=LEASE_S, capabilities=Capabilities(0, 1, frozenset({"fast"}))
        )
    assert lease is not None
    (statement, parameters), *_ = [(s, p) for s, p in statements if s.startswith("UPDATE jobs")]
    text = query_plan(engine, statement, parameters)
    assert "ix_jobs_status_queue_order" in text, text
    assert "job_labels_pkey" in text or "sqlite_autoindex_job_labels_1" in text, text
    assert "SCAN job_labels" not in text and "Seq Scan on job_labels" not in text, text
