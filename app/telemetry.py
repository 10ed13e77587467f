"""Prometheus series: the queue, read from the database at scrape time, and the HTTP traffic.

Every app has its own CollectorRegistry (app.state.metrics_registry), so that several apps
in one process (tests) never share or clash over series.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import disk_usage
from app.models import JobStatus
from app.queue import stats

# Epochs take from seconds (a small model on a GPU) to hours (a large one on a CPU).
EPOCH_DURATION_BUCKETS_S = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
UNMATCHED_ROUTE = "unmatched"
# The method is the client's to choose: anything else is one label value, not a new series each.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"


@dataclass
class _EpochTotals:
    last_id: int = 0  # the newest epoch_metrics row already counted
    count: int = 0
    seconds: float = 0.0
    at_most: list[int] = field(default_factory=lambda: [0] * len(EPOCH_DURATION_BUCKETS_S))

    def add(self, new: stats.EpochTally) -> None:
        self.last_id = new.last_id
        self.count += new.count
        self.seconds += new.duration_sum_s
        self.at_most = [old + n for old, n in zip(self.at_most, new.at_most, strict=True)]


class QueueCollector(Collector):
    """Gauges from indexed queries at each scrape. The worker, not this process, finishes
    epochs, so their series are running totals that each scrape advances by the rows added
    to epoch_metrics since the last one: the table is read once, however often it is scraped.
    New rows are found by id. The table has AUTOINCREMENT (sqlite_autoincrement), so no id is
    ever given twice: an epoch that a retried attempt trains again replaces its row with one of a
    new id, and is counted again, as the work was done again."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()  # two scrapes at once must not count the same rows twice
        self._epochs = _EpochTotals()

    def describe(self) -> Iterator[Metric]:
        # Names only: registering the collector must not query the database.
        empty = stats.QueueSnapshot(jobs_by_status={}, oldest_queued_age_s=0.0, active_workers=0)
        return _families(empty, epochs=_EpochTotals())

    def collect(self) -> Iterator[Metric]:
        snapshot = stats.queue_snapshot(self._engine)
        with self._lock:
            self._epochs.add(
                stats.epochs_after(
                    self._engine, after_id=self._epochs.last_id, bounds_s=EPOCH_DURATION_BUCKETS_S
                )
            )
            epochs = replace(self._epochs)  # add() swaps the bucket list, never mutates it
        return _families(snapshot, epochs=epochs)


def _families(snapshot: stats.QueueSnapshot, *, epochs: _EpochTotals) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("trainq_jobs", "Jobs in each status.", labels=["status"])
    for status, count in snapshot.jobs_by_status.items():
        jobs.add_metric([status.value], count)
    yield jobs
    depth = snapshot.jobs_by_status.get(JobStatus.queued, 0)
    yield GaugeMetricFamily("trainq_queue_depth", "Jobs waiting for a worker.", value=depth)
    yield GaugeMetricFamily(
        "trainq_oldest_queued_job_age_seconds",
        "Seconds since the longest-waiting queued job was submitted; 0 when none waits.",
        value=snapshot.oldest_queued_age_s,
    )
    yield GaugeMetricFamily(
        "trainq_active_workers",
        "Distinct workers running a job whose lease has not run out.",
        value=snapshot.active_workers,
    )
    yield CounterMetricFamily(
        "trainq_epochs_completed",
        "Epochs finished by workers, counted as their rows are added to epoch_metrics.",
        value=epochs.count,
    )
    histogram = HistogramMetricFamily(
        "trainq_epoch_duration_seconds", "Wall time of finished epochs, as workers recorded it."
    )
    buckets = [(str(bound), n) for bound, n in zip(EPOCH_DURATION_BUCKETS_S, epochs.at_most, strict=True)]
    histogram.add_metric([], [*buckets, ("+Inf", epochs.count)], sum_value=epochs.seconds)
    yield histogram


class ArtifactsCollector(Collector):
    """trainq_artifacts_bytes at each scrape: app.disk_usage's total, from the rows (three
    aggregate queries) and a look on disk at the few resume files."""

    def __init__(self, engine: Engine, artifacts_dir: Path) -> None:
        self._engine = engine
        self._artifacts_dir = artifacts_dir

    def describe(self) -> Iterator[Metric]:
        yield self._family(0)

    def collect(self) -> Iterator[Metric]:
        yield self._family(disk_usage.total_bytes(self._engine, artifacts_dir=self._artifacts_dir))

    @staticmethod
    def _family(value: int) -> Metric:
        return GaugeMetricFamily(
            "trainq_artifacts_bytes",
            "Bytes of the files jobs list in TRAINQ_ARTIFACTS_DIR: checkpoints, exports and resume files "
            "(training logs are not counted); the sum of the jobs' disk_bytes.",
            value=value,
        )


class HttpMetrics:
    """The request series, registered once per app (the middleware stack may be built again)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "trainq_http_requests",
            "HTTP requests by method, route template ('unmatched' when no route took the request) "
            "and response status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "trainq_http_request_duration_seconds",
            "Time from receiving a request to the start of its response (status and headers sent): "
            "a stream such as /jobs/{job_id}/events counts until it starts, not while it stays open.",
            ["method", "route"],
            registry=registry,
        )
        # Each series' children by (method, route, status): labels() costs more than the update.
        # Few: route templates, known methods, statuses.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def record(self, scope: Scope, status: int, elapsed_s: float) -> None:
        # The router leaves the matched route in the scope; a template keeps series few.
        route = getattr(scope.get("route"), "path_format", None) or UNMATCHED_ROUTE
        method = scope["method"] if scope["method"] in KNOWN_METHODS else OTHER_METHOD
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._series[key] = series
        requests, latency = series
        requests.inc()
        latency.observe(elapsed_s)


class RecordRequests:
    """Counts and times every request, recording when the response starts so that a
    response streamed for hours is counted at once and timed to its first byte."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        recorded = False

        async def timed_send(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                self.metrics.record(scope, message["status"], time.perf_counter() - started_at)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except Exception:
            # The server's error handler, outside this middleware, answers it with a 500.
            if not recorded:
                self.metrics.record(scope, 500, time.perf_counter() - started_at)
            raise
