"""The worker loop: register, claim a job this worker can serve, supervise it to its end, repeat."""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app import queue
from app.queue import wakeup, workers
from app.settings import Settings
from worker import cpu_share, devices
from worker.entry import ready
from worker.supervisor import JobSupervisor

logger = logging.getLogger(__name__)

# Training processes fork from a server that has already imported torch, the
# training code and scikit-learn's datasets (the digits demo), so a job starts
# in milliseconds, yet each job has its own process.
PRELOAD_MODULES = ["worker.entry", "worker.training_process", "sklearn.datasets"]


def training_context() -> multiprocessing.context.BaseContext:
    """Start the fork server and wait until it has loaded torch, before the first claim:
    a claimed job must not wait for it (its lease would run out meanwhile)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD_MODULES)
    warm_up = ctx.Process(target=ready, name="trainq-warm-up")
    warm_up.start()
    warm_up.join()
    return ctx


class Worker:
    def __init__(self, *, engine: Engine, settings: Settings, stop: threading.Event) -> None:
        self._engine = engine
        self._settings = settings
        self._stop = stop
        self._mp = training_context()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.card = workers.WorkerCard(
            id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            capabilities=devices.capabilities(settings),
            memory_bytes=devices.memory_bytes(),
            version=devices.trainq_version(),
        )

    def run(self, *, burst: bool = False) -> None:
        """Work until stopped; in burst mode, return as soon as no job it can serve is queued."""
        logger.info("worker %s started (%s)", self.worker_id, "burst" if burst else "until stopped")
        waiter = wakeup.waiter_for(
            self._engine, stop=self._stop, poll_interval_s=self._settings.poll_interval_seconds
        )
        try:
            with Presence(self._engine, card=self.card, lease_seconds=self._settings.lease_seconds):
                self._work(waiter, burst=burst)
        finally:
            waiter.close()
        logger.info("worker %s stopped", self.worker_id)

    def _work(self, waiter: wakeup.Waiter, *, burst: bool) -> None:
        next_reap = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_reap:
                # Any worker takes back jobs whose worker died; a quarter lease is soon enough.
                queue.requeue_expired(self._engine)
                next_reap = time.monotonic() + self._settings.lease_seconds / 4
            # Idle polls only read; a claim (a write transaction) is tried only when a job waits.
            if not queue.has_queued(self._engine, capabilities=self.card.capabilities):
                if burst:
                    break
                # A NOTIFY (PostgreSQL) ends the wait early; the next poll finds the job either way.
                waiter.wait(waiter.poll_interval_s)
                continue
            # Taken before the claim, so that it comes no later than the lease's expiry in the database.
            lease_deadline = time.monotonic() + self._settings.lease_seconds
            lease = queue.claim(
                self._engine,
                worker_id=self.worker_id,
                lease_seconds=self._settings.lease_seconds,
                capabilities=self.card.capabilities,
            )
            if lease is None:
                continue  # another worker claimed it first
            cpu_threads = cpu_share.threads_for_claim(
                self._engine, setting=self._settings.cpu_threads, host=self.card.host, ranks=lease.devices
            )
            JobSupervisor(
                engine=self._engine,
                settings=self._settings,
                lease=lease,
                lease_deadline=lease_deadline,
                stop=self._stop,
                mp=self._mp,
                cpu_threads=cpu_threads,
            ).run()


class Presence:
    """The worker's row in the registry: registered on entry, renewed every quarter lease by a
    daemon thread (the claim loop's own thread is busy supervising a job for hours), removed on
    exit. A heartbeat that fails is logged and tried again at the next beat."""

    def __init__(self, engine: Engine, *, card: workers.WorkerCard, lease_seconds: float) -> None:
        self._engine = engine
        self._card = card
        self._lease_seconds = lease_seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="trainq-worker-heartbeat", daemon=True)

    def __enter__(self) -> Presence:
        workers.register(self._engine, card=self._card, lease_seconds=self._lease_seconds)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()
        try:
            workers.deregister(self._engine, worker_id=self._card.id)
        except SQLAlchemyError:
            logger.warning("worker %s could not deregister; it stops counting as live soon", self._card.id)

    def _beat(self) -> None:
        while not self._done.wait(workers.heartbeat_interval_s(self._lease_seconds)):
            try:
                workers.heartbeat(self._engine, card=self._card, lease_seconds=self._lease_seconds)
            except SQLAlchemyError as exc:
                logger.warning("worker %s heartbeat failed (%s); trying again", self._card.id, exc)
