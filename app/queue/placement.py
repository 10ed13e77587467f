"""Which queued jobs a worker can serve (as SQL, for claim and has_queued) and, for a queued job
that no live worker could serve, why it waits.

The rule (app.resources.Capabilities.can_serve): the job's labels are a subset of the worker's,
and it needs no more devices than the worker has of the job's kind, where `auto` means CUDA on a
worker with a GPU and the CPU elsewhere. Both parts are plain column comparisons and one NOT
EXISTS probe of job_labels' primary key, so SQLite and PostgreSQL answer them alike, row by row
along the index a claim already walks.
"""

from __future__ import annotations

from sqlalchemy import and_, exists, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from app.models import Job, JobLabel
from app.resources import Capabilities, DeviceKind

from .sweeps import sweep_holds_back
from .workers import live_capabilities, live_workers

SHOWN_WORKERS = 5


def servable_by(capabilities: Capabilities, jobs: type[Job] = Job) -> ColumnElement[bool]:
    """A WHERE clause over `jobs` (Job or an alias of it): the jobs this worker can serve."""
    kinds: tuple[DeviceKind, ...] = ("cuda", "cpu", "auto")
    enough_devices = or_(
        *(
            and_(col(jobs.device_kind) == kind, col(jobs.devices) <= capabilities.devices_of(kind))
            for kind in kinds
        )
    )
    labels = select(JobLabel.label).where(col(JobLabel.job_id) == col(jobs.id))
    if capabilities.labels:
        labels = labels.where(col(JobLabel.label).not_in(sorted(capabilities.labels)))
    return and_(enough_devices, ~exists(labels))


def waiting_reason(session: Session, *, job: Job) -> str | None:
    """Why a queued job cannot start: no live worker could run it, or its sweep runs its
    max_parallel jobs already. None when it could start (a capable worker may be busy: the job
    waits its turn) or the job is not queued. Reads the live workers once."""
    if job.status != "queued":
        return None
    workers = live_workers(session)
    if not workers:
        return "no worker is running"
    kind: DeviceKind = job.device_kind  # type: ignore[assignment]
    capable = (
        live_capabilities(w).can_serve(devices=job.devices, device_kind=kind, labels=job.labels)
        for w in workers
    )
    if any(capable):
        return sweep_holds_back(session, job=job)
    shown = "; ".join(f"{w.id} has {live_capabilities(w).describe()}" for w in workers[:SHOWN_WORKERS])
    more = f"; and {len(workers) - SHOWN_WORKERS} more" if len(workers) > SHOWN_WORKERS else ""
    count = f"{len(workers)} live worker{'s' if len(workers) != 1 else ''}"
    return f"no live worker has {needs(job.devices, kind, job.labels)} ({count}: {shown}{more})"


def needs(devices: int, kind: DeviceKind, labels: list[str]) -> str:
    plural = "s" if devices != 1 else ""
    if kind == "auto":
        what = f"{devices} device{plural} for device auto (cuda on a worker with a GPU, else cpu)"
    else:
        what = f"{devices} {kind} device{plural}"
    return f"{what} with labels [{', '.join(labels)}]" if labels else what
