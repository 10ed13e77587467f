"""The worker registry: each `python -m worker` registers, renews its row with a heartbeat and
removes it when it stops cleanly.

A worker is live while its last heartbeat is younger than LIVE_LEASES of its own
TRAINQ_LEASE_SECONDS. Each heartbeat writes that deadline (live_until) by the database's clock,
so hosts whose clocks differ, or that run with other lease settings, agree on who is live. A
worker killed without a clean stop stays in the table, not live, until a later registration
removes it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, select

from app.db import read_session, write_session
from app.models import Job, JobStatus, RegisteredWorker
from app.resources import Capabilities
from app.schemas import WorkerPublic

from .clock import database_now

logger = logging.getLogger(__name__)

# A worker beats every quarter of its lease; it stops counting as live after two leases of silence.
LIVE_LEASES = 2.0


@dataclass(frozen=True)
class WorkerCard:
    """What a worker says about itself when it registers."""

    id: str  # host:pid, the worker_id it claims jobs with
    host: str
    pid: int
    capabilities: Capabilities
    memory_bytes: int
    version: str  # trainq's package version


def heartbeat_interval_s(lease_seconds: float) -> float:
    return lease_seconds / 4


def register(engine: Engine, *, card: WorkerCard, lease_seconds: float) -> None:
    """Add (or replace) the worker's row, and remove rows of workers that stopped being live."""
    with write_session(engine) as session:
        now = database_now(session)
        session.execute(
            delete(RegisteredWorker).where(
                (col(RegisteredWorker.id) == card.id) | (col(RegisteredWorker.live_until) < now)
            )
        )
        session.add(
            RegisteredWorker(
                id=card.id,
                host=card.host,
                pid=card.pid,
                cuda_devices=card.capabilities.cuda_devices,
                cpu_devices=card.capabilities.cpu_devices,
                memory_bytes=card.memory_bytes,
                labels=sorted(card.capabilities.labels),
                version=card.version,
                started_at=now,  # type: ignore[arg-type]
                last_heartbeat_at=now,  # type: ignore[arg-type]
                live_until=database_now(session, plus_s=LIVE_LEASES * lease_seconds),  # type: ignore[arg-type]
            )
        )
    logger.info("worker %s registered (%s)", card.id, card.capabilities.describe())


def heartbeat(engine: Engine, *, card: WorkerCard, lease_seconds: float) -> None:
    """Renew the worker's row; registers it again if its row is gone (removed as not live, after
    the worker was paused for longer than LIVE_LEASES)."""
    with write_session(engine) as session:
        renewed = session.execute(
            update(RegisteredWorker)
            .where(col(RegisteredWorker.id) == card.id)
            .values(
                last_heartbeat_at=database_now(session),
                live_until=database_now(session, plus_s=LIVE_LEASES * lease_seconds),
            )
        ).rowcount  # type: ignore[attr-defined]
    if not renewed:
        logger.warning("worker %s was no longer registered (paused?); registering again", card.id)
        register(engine, card=card, lease_seconds=lease_seconds)


def deregister(engine: Engine, *, worker_id: str) -> None:
    with write_session(engine) as session:
        session.execute(delete(RegisteredWorker).where(col(RegisteredWorker.id) == worker_id))
    logger.info("worker %s deregistered", worker_id)


def live_workers(session: Session) -> list[RegisteredWorker]:
    """Workers whose heartbeat is recent enough, oldest first (served by ix_workers_live_until)."""
    rows = session.exec(
        select(RegisteredWorker)
        .where(col(RegisteredWorker.live_until) > database_now(session))
        .order_by(col(RegisteredWorker.started_at), col(RegisteredWorker.id))
    )
    return list(rows)


def live_capabilities(worker: RegisteredWorker) -> Capabilities:
    return Capabilities(
        cuda_devices=worker.cuda_devices, cpu_devices=worker.cpu_devices, labels=frozenset(worker.labels)
    )


def list_live(engine: Engine) -> list[WorkerPublic]:
    """GET /workers: each live worker, how many live workers share its host (a worker splits
    the host's CPU threads among them) and the job it is running."""
    with read_session(engine) as session:
        workers = live_workers(session)
        running = dict(
            session.exec(
                select(Job.worker_id, Job.id).where(
                    Job.status == JobStatus.running, col(Job.worker_id).in_([w.id for w in workers])
                )
            ).all()
        )
    per_host = Counter(worker.host for worker in workers)
    return [
        WorkerPublic(
            **worker.model_dump(exclude={"live_until"}),
            workers_on_host=per_host[worker.host],
            job_id=running.get(worker.id),
        )
        for worker in workers
    ]


def workers_on_host(engine: Engine, *, host: str) -> int:
    """How many live workers run on `host` (for a worker to share the host's CPUs out)."""
    with read_session(engine) as session:
        return sum(worker.host == host for worker in live_workers(session))
