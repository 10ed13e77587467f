"""The queue on PostgreSQL beside SQLite, in one run: claims per second with 8 workers, and pickup.

    python bench/queue_db.py [--jobs 2000] [--pickups 40] [--workers 8] [--quick]
                             [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Each measurement gets a fresh database: one made on the PostgreSQL server (dropped at the end)
or a temporary SQLite file, with the schema of app.migrations.upgrade. The workers are
processes (forked, one engine each with WORKER_POOL) running the loop of Worker._work with the
reaper and the training left out: has_queued, then claim and at once succeed (app.queue's own
functions); when nothing is queued, a burst worker returns and an idle one waits on its waiter.
The real Worker is not used: it would fork a training process for every job.

1. Claims: --jobs jobs are queued with app.queue.submit, then --workers burst workers start
   together and empty the queue; the baseline is one worker on a quarter as many jobs.
   claims/s = jobs / (start to the last succeed). Every job must be claimed once: the claims the
   workers report are compared with the jobs submitted, and the database must hold every job
   succeeded at attempt 1 (otherwise the exit status is 1).
2. Pickup: idle workers, each starting at a random moment of its poll, and jobs submitted one
   at a time (the first untimed), each at a random moment up to 1 s after the last was claimed
   and succeeded. Pickup is time.time() after submit returns (its commit) to time.time() after
   claim returns, in the worker (one host, one clock). Waits, with --workers workers: PostgreSQL
   with wakeup.waiter_for (LISTEN/NOTIFY; the idle poll is then LISTENING_POLL_S), PostgreSQL
   with wakeup.StopWait (polling only) and SQLite (waiter_for gives StopWait), both polling every
   poll_interval_seconds' default; and LISTEN/NOTIFY with one worker, whom no other worker
   races for the job. p99 is the nearest rank: the maximum under 100 jobs.

Without a PostgreSQL server to reach it says so and exits 0. --quick: --jobs 200 --pickups 5.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue as queue_module
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Literal, NamedTuple

import psycopg
from live_service import percentile
from sqlalchemy import func
from sqlalchemy.engine import make_url
from sqlmodel import select

from app import queue
from app.contract import RunResults, StopReason
from app.db import WORKER_POOL, make_engine, read_session
from app.migrations import upgrade
from app.models import Job, JobCreate, JobStatus
from app.queue import wakeup
from app.resources import Capabilities
from app.settings import Settings

COMPLETED = RunResults(stop_reason=StopReason.completed, best_epoch=None)

DEFAULT_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
QUICK = {"jobs": 200, "pickups": 5}
LEASE_S = 60.0
SPACING_S = 1.0  # the longest pause before a pickup's submit: as long as a listening worker's poll
START_TIMEOUT_S = 60.0
PICKUP_TIMEOUT_S = 30.0
CLAIMS_TIMEOUT_S = 600.0
REPORT_POLL_S = 1.0
POLL_S: float = Settings.model_fields["poll_interval_seconds"].default  # not the environment's

DATABASES = ("PostgreSQL", "SQLite")

Waiting = Literal["waiter_for", "polling"]


class Claimed(NamedTuple):
    job_id: str
    at: float  # time.time() when claim returned


class Done(NamedTuple):
    job_ids: list[str]
    polls: int  # has_queued reads
    last_succeed: float  # time.time(); 0 when it claimed nothing
    poll_interval_s: float  # the waiter's idle poll: LISTENING_POLL_S while listening


def work(url: str, waiting: Waiting, burst: bool, ready: Barrier, stop: Connection, reports: Queue) -> None:
    """One worker process: Worker._work's loop, with claim and succeed in place of a training job.
    Anything sent on `stop` sets its stop event, as a signal does a worker's (waits end at once)."""
    engine = make_engine(url, pool=WORKER_POOL)
    stopped = threading.Event()
    # poll, not recv: the one message stays in the pipe for every worker to see.
    threading.Thread(target=lambda: (stop.poll(None), stopped.set()), daemon=True).start()
    if waiting == "waiter_for":
        waiter = wakeup.waiter_for(engine, stop=stopped, poll_interval_s=POLL_S)
    else:
        waiter = wakeup.StopWait(stop=stopped, poll_interval_s=POLL_S)
    poll_interval_s = waiter.poll_interval_s
    # A worker with a CPU and no labels, like the one `make run` starts on this machine.
    capabilities = Capabilities(cuda_devices=0, cpu_devices=1)
    queue.has_queued(
        engine, capabilities=capabilities
    )  # the pool's first connection opens before the clock starts
    worker_id = f"bench:{os.getpid()}"
    job_ids: list[str] = []
    polls, last_succeed = 0, 0.0
    ready.wait()
    if not burst:
        stopped.wait(random.uniform(0, poll_interval_s))  # workers start at random moments
    try:
        while not stopped.is_set():
            polls += 1
            if not queue.has_queued(engine, capabilities=capabilities):
                if burst:
                    break
                waiter.wait(waiter.poll_interval_s)
                continue
            lease = queue.claim(engine, worker_id=worker_id, lease_seconds=LEASE_S, capabilities=capabilities)
            if lease is None:
                continue  # another worker claimed it first
            claimed_at = time.time()
            queue.succeed(engine, lease=lease, runtime_seconds=0.0, results=COMPLETED)
            last_succeed = time.time()
            job_ids.append(lease.job_id)
            if not burst:
                reports.put(Claimed(lease.job_id, claimed_at))
    finally:
        waiter.close()
        engine.dispose()
    reports.put(Done(job_ids, polls, last_succeed, poll_interval_s))


class Workers:
    """Worker processes on one database, released together once connected (started: when)."""

    def __init__(self, url: str, count: int, *, waiting: Waiting, burst: bool) -> None:
        context = multiprocessing.get_context("fork")  # no re-import per process
        self._reports: Queue = context.Queue()
        self._ready = context.Barrier(count + 1)
        # This process keeps the reading end open too, so a send never finds the pipe broken.
        self._stop_read, self._stop = context.Pipe(duplex=False)
        args = (url, waiting, burst, self._ready, self._stop_read, self._reports)
        self._processes = [context.Process(target=work, args=args) for _ in range(count)]
        self.started = 0.0

    def start(self) -> None:
        for process in self._processes:
            process.start()
        self._ready.wait(START_TIMEOUT_S)
        self.started = time.time()

    def claimed(self) -> Claimed:
        report = self._reports.get(timeout=PICKUP_TIMEOUT_S)
        assert isinstance(report, Claimed), report
        return report

    def done(self, *, stop: bool) -> list[Done]:
        """Each worker's Done, after it returned (burst) or was stopped."""
        if stop:
            self._stop.send(True)
        reports = [self._next_report(time.monotonic() + CLAIMS_TIMEOUT_S) for _ in self._processes]
        for process in self._processes:
            process.join()
        assert all(isinstance(report, Done) for report in reports), reports
        return reports

    def _next_report(self, deadline: float) -> Claimed | Done:
        """The next report; a worker that died without one fails the run at once, not at the deadline."""
        while True:
            try:
                return self._reports.get(timeout=min(REPORT_POLL_S, max(deadline - time.monotonic(), 0.0)))
            except queue_module.Empty:
                crashed = [p.exitcode for p in self._processes if p.exitcode not in (None, 0)]
                if crashed:
                    raise RuntimeError(
                        f"a worker process exited with code {crashed[0]} without reporting"
                    ) from None
                if time.monotonic() >= deadline:
                    raise

    def kill(self) -> None:
        """Stop workers still running (after an error), killing any that do not stop within 5 s."""
        self._stop.send(True)
        for process in self._processes:
            if process.is_alive():
                process.join(5)
                process.kill()


@contextmanager
def workers(url: str, count: int, *, waiting: Waiting, burst: bool) -> Iterator[Workers]:
    running = Workers(url, count, waiting=waiting, burst=burst)
    try:
        running.start()
        yield running
    finally:
        running.kill()


def admin_conninfo(server_url: str) -> str:
    return make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A new database on the server, with the schema; dropped (connections and all) on exit."""
    name = f"trainq_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_conninfo(server_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(server_url).set(drivername="postgresql+psycopg", database=name)
        yield migrated(url.render_as_string(hide_password=False))
    finally:
        with psycopg.connect(admin_conninfo(server_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="trainq-bench-") as tmp:
        yield migrated(f"sqlite:///{tmp}/trainq.db")


def migrated(url: str) -> str:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def submit(url: str, count: int) -> set[str]:
    engine = make_engine(url)
    job_ids = {queue.submit(engine, job_in=JobCreate(name=f"bench {i}"))[0].id for i in range(count)}
    engine.dispose()  # no connection is inherited by the forked workers
    return job_ids


@dataclass(frozen=True)
class Claims:
    per_s: float
    seconds: float
    claims: int
    distinct: int
    succeeded_once: int  # jobs succeeded at attempt 1, in the database
    jobs: int

    @property
    def each_once(self) -> bool:
        return self.claims == self.distinct == self.succeeded_once == self.jobs


def measure_claims(url: str, jobs: int, count: int) -> Claims:
    submitted = submit(url, jobs)
    with workers(url, count, waiting="waiter_for", burst=True) as running:
        reports = running.done(stop=False)
    seconds = max(report.last_succeed for report in reports) - running.started
    claimed = [job_id for report in reports for job_id in report.job_ids]
    engine = make_engine(url)
    with read_session(engine) as session:
        succeeded_once = session.exec(
            select(func.count()).where(Job.status == JobStatus.succeeded, Job.attempts == 1)
        ).one()
    engine.dispose()
    distinct = len(set(claimed) & submitted)
    return Claims(len(claimed) / seconds, seconds, len(claimed), distinct, succeeded_once, jobs)


@dataclass(frozen=True)
class Pickup:
    delays_ms: list[float]
    poll_interval_s: float
    polls_per_s: float  # has_queued reads by all the workers together


def measure_pickup(url: str, pickups: int, count: int, waiting: Waiting) -> Pickup:
    engine = make_engine(url)
    delays_ms: list[float] = []
    with workers(url, count, waiting=waiting, burst=False) as running:
        for index in range(pickups + 1):  # the first is a warm-up
            time.sleep(random.uniform(0, SPACING_S))
            job, _ = queue.submit(engine, job_in=JobCreate(name=f"pickup {index}"))
            committed = time.time()
            claimed = running.claimed()
            assert claimed.job_id == job.id, (claimed, job.id)
            if index:
                delays_ms.append((claimed.at - committed) * 1000)
        reports = running.done(stop=True)
        seconds = time.time() - running.started
    engine.dispose()
    polls_per_s = sum(report.polls for report in reports) / seconds
    return Pickup(delays_ms, reports[0].poll_interval_s, polls_per_s)


def server_version(server_url: str) -> str | None:
    """PostgreSQL's version, or None (with the reason printed) when the server cannot be reached."""
    try:
        with psycopg.connect(admin_conninfo(server_url), connect_timeout=5) as admin:
            row = admin.execute("SHOW server_version").fetchone()
    except psycopg.OperationalError as exc:
        shown = make_url(server_url).render_as_string()
        print(f"PostgreSQL at {shown} is not reachable ({' '.join(str(exc).split())}): nothing measured")
        return None
    assert row is not None
    return str(row[0]).split()[0]


def database(name: str, server_url: str) -> AbstractContextManager[str]:
    return postgres_database(server_url) if name == "PostgreSQL" else sqlite_database()


def claims_table(server_url: str, jobs: int, count: int) -> dict[tuple[str, int], Claims]:
    """Claims per second on each database, with `count` workers and (on a quarter of the jobs) one."""
    print(
        f"\nclaims: {jobs} queued jobs for {count} burst workers, {jobs // 4} for 1 "
        "(each: has_queued, claim, succeed until nothing is queued)"
    )
    print(f"{'database':<11} {'workers':>7} {'claims/s':>9} {'seconds':>8}  each job claimed once")
    results: dict[tuple[str, int], Claims] = {}
    for name in DATABASES:
        for processes, queued in ((1, jobs // 4), (count, jobs)):
            with database(name, server_url) as url:
                result = results[name, processes] = measure_claims(url, queued, processes)
            print(
                f"{name:<11} {processes:>7} {result.per_s:>9,.0f} {result.seconds:>8.2f}  "
                f"{'yes' if result.each_once else 'NO'}: {result.claims} claims, {result.distinct} "
                f"distinct jobs of {result.jobs}, {result.succeeded_once} succeeded at attempt 1"
            )
    return results


def pickup_table(server_url: str, pickups: int, count: int) -> dict[tuple[str, str, int], float]:
    """Pickup percentiles for each way of waiting, with `count` workers (and LISTEN/NOTIFY with one,
    where no other worker wakes with it); returns the p50s (ms)."""
    print(
        f"\npickup: {pickups} jobs submitted one at a time to idle workers; submit's commit to claim's return"
    )
    print(
        f"{'database':<11} {'wait':<32} {'workers':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  "
        "has_queued reads/s"
    )
    waits: list[tuple[str, str, Waiting, int]] = [
        ("PostgreSQL", "LISTEN/NOTIFY", "waiter_for", 1),
        ("PostgreSQL", "LISTEN/NOTIFY", "waiter_for", count),
        ("PostgreSQL", "polling", "polling", count),
        ("SQLite", "polling", "waiter_for", count),
    ]
    p50s: dict[tuple[str, str, int], float] = {}
    for name, label, waiting, processes in waits:
        with database(name, server_url) as url:
            pickup = measure_pickup(url, pickups, processes, waiting)
        wait = f"{label}, poll every {pickup.poll_interval_s:g} s"
        p50s[name, label, processes] = p50 = statistics.median(pickup.delays_ms)
        print(
            f"{name:<11} {wait:<32} {processes:>7} {p50:>7.1f} {percentile(pickup.delays_ms, 0.99):>7.1f} "
            f"{max(pickup.delays_ms):>7.1f}  {pickup.polls_per_s:.1f}"
        )
    return p50s


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000, help="queued jobs for --workers (a quarter for 1)")
    parser.add_argument("--pickups", type=int, default=40, help="jobs submitted one at a time, per wait")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--postgres-url", default=DEFAULT_SERVER_URL, help="a server to CREATE DATABASE on")
    parser.add_argument("--quick", action="store_true", help="--jobs 200 --pickups 5: a check that it runs")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.pickups = QUICK["jobs"], QUICK["pickups"]
    version = server_version(args.postgres_url)
    if version is None:
        return 0
    server = make_url(args.postgres_url)
    print(
        f"PostgreSQL {version} at {server.host}:{server.port or 5432}, SQLite {sqlite3.sqlite_version} "
        f"(a temporary file); {os.cpu_count()} CPUs"
    )
    claims = claims_table(args.postgres_url, args.jobs, args.workers)
    p50s = pickup_table(args.postgres_url, args.pickups, args.workers)

    many = {name: claims[name, args.workers].per_s for name in DATABASES}
    one = {name: claims[name, 1].per_s for name in DATABASES}
    print(
        f"\nclaims/s PostgreSQL / SQLite = {many['PostgreSQL'] / many['SQLite']:.2f} at {args.workers} workers "
        f"({many['PostgreSQL']:,.0f} vs {many['SQLite']:,.0f}), {one['PostgreSQL'] / one['SQLite']:.2f} at 1; "
        f"{args.workers} workers / 1: PostgreSQL {many['PostgreSQL'] / one['PostgreSQL']:.2f}, "
        f"SQLite {many['SQLite'] / one['SQLite']:.2f}"
    )
    notify = p50s["PostgreSQL", "LISTEN/NOTIFY", args.workers]
    polling = p50s["PostgreSQL", "polling", args.workers]
    print(
        f"pickup p50 at {args.workers} workers: polling / LISTEN/NOTIFY = {polling / notify:.2f} on PostgreSQL "
        f"({polling:.1f} vs {notify:.1f} ms), SQLite polling {p50s['SQLite', 'polling', args.workers]:.1f} ms; "
        f"LISTEN/NOTIFY {args.workers} workers / 1 = {notify / p50s['PostgreSQL', 'LISTEN/NOTIFY', 1]:.2f}"
    )
    return 0 if all(result.each_once for result in claims.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
