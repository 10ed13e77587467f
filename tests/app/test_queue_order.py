"""Claim order: higher priority first, first in first out within a priority, and aging, so that a
low-priority job is not starved by a stream of higher-priority ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from app import queue
from app.models import JobCreate
from app.queue.ordering import PRIORITY_AGING_S
from tests.factories import ONE_CPU, backdate, submit_job

LEASE_S = 60.0


def claimed_id(engine: Engine) -> str | None:
    lease = queue.claim(engine, worker_id="w1", lease_seconds=LEASE_S, capabilities=ONE_CPU)
    return None if lease is None else lease.job_id


def test_a_higher_priority_job_is_claimed_before_older_jobs_of_lower_priority(engine: Engine) -> None:
    low = submit_job(engine, "low", priority=-1)
    normal = submit_job(engine, "normal")
    high = submit_job(engine, "high", priority=5)
    assert (high.priority, high.queue_order_at) == (
        5,
        high.created_at - timedelta(seconds=5 * PRIORITY_AGING_S),
    )
    assert [claimed_id(engine) for _ in range(4)] == [high.id, normal.id, low.id, None]


def test_jobs_of_one_priority_are_claimed_first_in_first_out(engine: Engine) -> None:
    now = datetime.now(UTC)
    # Submitted out of order of their (backdated) creation: the claim follows created_at, not ids.
    jobs = [backdate(engine, submit_job(engine, priority=2), now - timedelta(seconds=s)) for s in (5, 30, 10)]
    backdate(engine, submit_job(engine, priority=1), now - timedelta(seconds=60))  # older, but lower
    expected = [job.id for job in sorted(jobs, key=lambda job: job.created_at)]
    assert [claimed_id(engine) for _ in range(3)] == expected


def test_a_released_job_keeps_its_place_before_younger_jobs_of_its_priority(engine: Engine) -> None:
    first = submit_job(engine, priority=3)
    submit_job(engine, priority=3)
    lease = queue.claim(engine, worker_id="w1", lease_seconds=LEASE_S, capabilities=ONE_CPU)
    assert lease is not None and lease.job_id == first.id
    assert queue.release(engine, lease=lease, resume_file=None, runtime_seconds=1.0)
    assert claimed_id(engine) == first.id


def test_a_low_priority_job_is_claimed_once_its_age_outweighs_a_stream_of_higher_priorities(
    engine: Engine,
) -> None:
    # One worker finishes a job a minute, and each minute a job of priority 1 to 5 arrives. Without
    # aging the priority-0 job would wait as long as they keep coming; with it, it goes first once it
    # has waited longer than 5 levels' worth (then even a new priority-5 job is younger than it).
    step = timedelta(minutes=1)
    start = datetime.now(UTC) - timedelta(days=1)  # the whole stream in the past: no waiting
    patient = backdate(engine, submit_job(engine, "patient", priority=0), start)
    claims: list[str | None] = []
    for minute in range(1, 120):
        backdate(engine, submit_job(engine, priority=1 + minute % 5), start + minute * step)
        claims.append(claimed_id(engine))
        if claims[-1] == patient.id:
            break
    assert patient.id in claims, "the priority-0 job starved"
    waited = claims.index(patient.id) + 1
    assert waited > 1  # higher priorities went first while it was young
    assert waited * step <= timedelta(seconds=5 * PRIORITY_AGING_S) + step


def test_priority_is_bounded_and_must_be_an_integer() -> None:
    assert JobCreate(priority=1000).priority == 1000
    assert JobCreate(priority=-1000).priority == -1000
    for bad in (1001, -1001, "3", True, 1.5):
        try:
            JobCreate(priority=bad)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"priority {bad!r} was accepted")


def test_a_request_without_priority_hashes_as_before_so_old_idempotency_keys_still_match() -> None:
    # The hash of this request before priority existed (commit a6ca8d1).
    before = "44d3e898e7844b33057a2e6f77fbf2f0a4b42139caee5ee75bf86a2308f1f369"
    assert queue.request_hash(JobCreate(name="nightly", max_attempts=2)) == before
    assert queue.request_hash(JobCreate(name="nightly", max_attempts=2, priority=0)) == before
    assert queue.request_hash(JobCreate(name="nightly", max_attempts=2, priority=1)) != before
