from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import Engine, update
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import queue
from app.contract import FailureReason
from app.db import write_session
from app.main import create_app
from app.models import Job, JobStatus, utcnow
from app.settings import Settings
from app.telemetry import HttpMetrics, RecordRequests
from tests.factories import COMPLETED, ONE_CPU, epoch_metrics, submit_job

LEASE_S = 60.0
OPS_KEY = "ops-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
ALICE_KEY = "alice-key-0123456789abcdef"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def claim(engine: Engine, worker_id: str) -> queue.Lease:
    lease = queue.claim(engine, worker_id=worker_id, lease_seconds=LEASE_S, capabilities=ONE_CPU)
    assert lease is not None
    return lease


def set_job(engine: Engine, job_id: str, **values: object) -> None:
    with write_session(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))  # type: ignore[arg-type]


def record_epochs(engine: Engine, lease: queue.Lease, durations_s: Sequence[float], first: int = 1) -> None:
    for epoch, duration_s in enumerate(durations_s, start=first):
        metrics = epoch_metrics(epoch, duration_seconds=duration_s)
        assert queue.record_epoch(engine, lease=lease, metrics=metrics, progress=0.1) is not None


def test_jobs_are_counted_in_every_status_with_absent_ones_at_zero(
    client: TestClient, engine: Engine
) -> None:
    for name in ("runs", "succeeds", "is cancelled", "waits"):
        submit_job(engine, name)
    claim(engine, "w1")
    assert queue.succeed(engine, lease=claim(engine, "w2"), runtime_seconds=1.0, results=COMPLETED)
    assert queue.cancel(engine, job_id=claim(engine, "w3").job_id) is not None

    samples = scrape(client)

    counts = {status: value(samples, "trainq_jobs", status=status.value) for status in JobStatus}
    assert counts == {
        JobStatus.queued: 1,
        JobStatus.running: 1,
        JobStatus.succeeded: 1,
        JobStatus.failed: 0,
        JobStatus.cancelled: 1,
    }
    assert value(samples, "trainq_queue_depth") == 1


def test_the_oldest_queued_job_age_counts_from_its_submission_and_is_zero_when_none_waits(
    client: TestClient, engine: Engine
) -> None:
    assert value(scrape(client), "trainq_oldest_queued_job_age_seconds") == 0
    old = submit_job(engine, "old")
    submit_job(engine, "new")
    set_job(engine, old.id, created_at=utcnow() - timedelta(seconds=120))

    assert 120 <= value(scrape(client), "trainq_oldest_queued_job_age_seconds") < 180

    claim(engine, "w1")
    claim(engine, "w1")
    assert value(scrape(client), "trainq_oldest_queued_job_age_seconds") == 0


def test_active_workers_are_the_distinct_holders_of_a_lease_that_has_not_run_out(
    client: TestClient, engine: Engine
) -> None:
    for _ in range(3):
        submit_job(engine)
    claim(engine, "alive")
    claim(engine, "alive")
    lost = claim(engine, "lost")
    assert value(scrape(client), "trainq_active_workers") == 2

    set_job(engine, lost.job_id, lease_expires_at=utcnow() - timedelta(seconds=1))

    assert value(scrape(client), "trainq_active_workers") == 1


def test_finished_epochs_fill_the_counter_and_the_duration_histogram(
    client: TestClient, engine: Engine
) -> None:
    submit_job(engine)
    record_epochs(engine, claim(engine, "w"), [0.5, 3.0, 20.0, 4000.0])

    samples = scrape(client)

    assert value(samples, "trainq_epochs_completed_total") == 4
    assert value(samples, "trainq_epoch_duration_seconds_count") == 4
    assert value(samples, "trainq_epoch_duration_seconds_sum") == pytest.approx(4023.5)
    buckets = {
        le: value(samples, "trainq_epoch_duration_seconds_bucket", le=le)
        for le in ("1.0", "5.0", "15.0", "30.0", "3600.0", "7200.0", "+Inf")
    }
    assert buckets == {"1.0": 1, "5.0": 2, "15.0": 2, "30.0": 3, "3600.0": 3, "7200.0": 4, "+Inf": 4}


def test_a_scrape_adds_exactly_the_epochs_recorded_since_the_last_one(
    client: TestClient, engine: Engine
) -> None:
    submit_job(engine)
    lease = claim(engine, "w")
    record_epochs(engine, lease, [2.0, 2.0])
    before = scrape(client)
    record_epochs(engine, lease, [10.0, 10.0, 100.0], first=3)

    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("trainq_epochs_completed_total") == 3
    assert grew("trainq_epoch_duration_seconds_count") == 3
    assert grew("trainq_epoch_duration_seconds_sum") == pytest.approx(120.0)
    assert grew("trainq_epoch_duration_seconds_bucket", le="5.0") == 0
    assert grew("trainq_epoch_duration_seconds_bucket", le="15.0") == 2
    assert value(scrape(client), "trainq_epochs_completed_total") == value(
        after, "trainq_epochs_completed_total"
    )


def test_an_epoch_redone_by_a_retried_attempt_counts_again_though_its_row_replaced_the_old_one(
    client: TestClient, engine: Engine
) -> None:
    submit_job(engine, "retried")
    submit_job(engine, "other")
    first = claim(engine, "w1")
    record_epochs(engine, first, [5.0])
    record_epochs(engine, claim(engine, "w2"), [5.0])
    assert value(scrape(client), "trainq_epochs_completed_total") == 2
    assert queue.fail(
        engine, lease=first, reason=FailureReason.worker_lost, message="gone", runtime_seconds=5.0
    )

    record_epochs(engine, claim(engine, "w3"), [7.0])

    # Two rows in the table, three epochs finished: a rescan of the table would say 2.
    samples = scrape(client)
    assert value(samples, "trainq_epochs_completed_total") == 3
    assert value(samples, "trainq_epoch_duration_seconds_sum") == pytest.approx(17.0)


def test_requests_are_counted_by_route_template_and_status(client: TestClient, engine: Engine) -> None:
    job = submit_job(engine)
    for _ in range(2):
        assert client.get(f"/jobs/{job.id}").status_code == 200
    assert client.get("/jobs/no-such-job").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    assert client.request("BREW", "/jobs").status_code == 405

    samples = scrape(client)

    def requests(method: str, route: str, status: str) -> float:
        return value(samples, "trainq_http_requests_total", method=method, route=route, status=status)

    assert requests("GET", "/jobs/{job_id}", "200") == 2
    assert requests("GET", "/jobs/{job_id}", "404") == 1
    assert requests("GET", "unmatched", "404") == 1
    assert requests("other", "/jobs", "405") == 1
    latency_count = "trainq_http_request_duration_seconds_count"
    assert value(samples, latency_count, method="GET", route="/jobs/{job_id}") == 3
    assert not any(job.id in dict(labels).get("route", "") for _, labels in samples)


def test_each_app_counts_only_its_own_requests(client: TestClient, settings: Settings) -> None:
    with TestClient(create_app(settings)) as other:
        other.get("/health")
        other.get("/health")
        client.get("/health")
        ours, theirs = scrape(client), scrape(other)
    health = {"method": "GET", "route": "/health", "status": "200"}
    assert value(ours, "trainq_http_requests_total", **health) == 1
    assert value(theirs, "trainq_http_requests_total", **health) == 2


def test_metrics_are_served_in_the_prometheus_text_format(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE trainq_jobs gauge" in response.text


def test_metrics_are_for_admin_and_the_metrics_owner_only(settings: Settings, engine: Engine) -> None:
    keys = f"metrics:{OPS_KEY},admin:{ADMIN_KEY},alice:{ALICE_KEY}"
    with TestClient(create_app(settings.model_copy(update={"api_keys": SecretStr(keys)}))) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        refused = client.get("/metrics", headers={"Authorization": f"Bearer {ALICE_KEY}"})
        assert refused.status_code == 403
        assert "'metrics'" in refused.json()["detail"]
        scraped = [scrape(client, Authorization=f"Bearer {key}") for key in (OPS_KEY, ADMIN_KEY)]
    assert [value(samples, "trainq_queue_depth") for samples in scraped] == [0, 0]


EVENTS = Route("/jobs/{job_id}/events", PlainTextResponse(""))
EVENTS_LABELS = {"method": "GET", "route": "/jobs/{job_id}/events"}


def serve_once(app: ASGIApp, metrics: HttpMetrics) -> None:
    scope: Scope = {"type": "http", "method": "GET", "path": "/jobs/abc/events", "headers": []}

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(_message: Message) -> None:
        pass

    asyncio.run(RecordRequests(app, metrics=metrics)(scope, receive, send))


def test_a_streamed_response_is_counted_when_it_starts_not_when_it_ends() -> None:
    registry = CollectorRegistry()
    counted_while_open: list[float | None] = []

    async def stream(scope: Scope, _receive: Receive, send: Send) -> None:
        scope["route"] = EVENTS
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            counted_while_open.append(
                registry.get_sample_value("trainq_http_requests_total", {**EVENTS_LABELS, "status": "200"})
            )
            await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    serve_once(stream, HttpMetrics(registry))

    assert counted_while_open == [1.0, 1.0, 1.0]
    assert registry.get_sample_value("trainq_http_request_duration_seconds_count", EVENTS_LABELS) == 1


def test_a_request_that_raises_before_responding_counts_as_a_500() -> None:
    registry = CollectorRegistry()

    async def crash(scope: Scope, _receive: Receive, _send: Send) -> None:
        scope["route"] = EVENTS
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        serve_once(crash, HttpMetrics(registry))

    assert registry.get_sample_value("trainq_http_requests_total", {**EVENTS_LABELS, "status": "500"}) == 1
