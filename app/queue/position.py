"""Where a queued job stands: its place in claim order among the jobs that compete for the same
workers, and how many jobs those workers are running now.

A queued job competes with the queued jobs ahead of it in claim order (queue_order_at, id) that a
live worker able to run it could take instead: a CPU job does not wait behind GPU jobs that only
GPU workers serve. While no live worker could run it (app.queue.placement.waiting_reason says
why) every queued job ahead counts, as if any worker might come. Both numbers are one COUNT each:
the first walks ix_jobs_status_queue_order up to the job, testing each row as a claim does; the
second reads the running jobs by status.
"""

from __future__ import annotations

from sqlalchemy import func, or_, tuple_
from sqlmodel import Session, col, select

from app.models import Job, JobStatus
from app.resources import Capabilities, DeviceKind
from app.schemas import QueuePlace

from .placement import servable_by
from .workers import live_capabilities, live_workers


def queue_place(session: Session, *, job: Job) -> QueuePlace | None:
    """The job's place in the queue; None when it is not queued."""
    if job.status != JobStatus.queued:
        return None
    kind: DeviceKind = job.device_kind  # type: ignore[assignment]
    capable = [
        worker
        for worker in live_workers(session)
        if live_capabilities(worker).can_serve(devices=job.devices, device_kind=kind, labels=job.labels)
    ]
    ahead = select(func.count()).where(
        col(Job.status) == JobStatus.queued,
        tuple_(col(Job.queue_order_at), col(Job.id)) < tuple_(job.queue_order_at, job.id),
    )
    if capable:
        kinds = sorted({live_capabilities(worker) for worker in capable}, key=Capabilities.describe)
        ahead = ahead.where(or_(*(servable_by(capabilities) for capabilities in kinds)))
    position = 1 + session.exec(ahead).one()
    running_ahead = 0
    if capable:
        running_ahead = session.exec(
            select(func.count()).where(
                col(Job.status) == JobStatus.running, col(Job.worker_id).in_([w.id for w in capable])
            )
        ).one()
    return QueuePlace(position=position, running_ahead=running_ahead)
