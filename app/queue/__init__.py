"""The only place that changes a job's state in SQL.

Routes and workers both call these named operations:
- submission: submit (idempotent), cancel;
- edits: update_job (name, tags, notes, and priority while queued);
- deletion: delete an ended job or one checkpoint, and expire old jobs' checkpoints (rows only:
  app.housekeeping removes the files after the commit);
- leases: has_queued, claim, requeue_expired, holds, heartbeat, and the ends of an attempt:
  succeed, fail (retried while attempts remain, for machine failures), release;
- records: what a running job reports (start, progress, each epoch with its checkpoint);
- workers (used as a module: app.queue.workers): the registry of live workers (register,
  heartbeat, deregister, list);
- placement: which jobs a worker can serve, and why a queued job waits;
- position: where a queued job stands (queue_place: its position and the jobs running ahead);
- sweeps: a sweep's jobs queued in one transaction (create_sweep), cancel_sweep, and its
  max_parallel as part of the claim;
- sources: the checkpoint a job's init_from names (checked at submit, found again at the claim).
"""

from app.contract import CheckpointFile
from app.resources import Capabilities

from .deletion import (
    CheckpointInUse,
    ExpiredFiles,
    JobNotEnded,
    delete_checkpoint,
    delete_job,
    expire_checkpoints,
    is_deleted,
)
from .edits import PriorityFixed, update_job
from .leases import (
    Lease,
    claim,
    fail,
    has_queued,
    heartbeat,
    holds,
    release,
    requeue_expired,
    succeed,
)
from .placement import waiting_reason
from .position import QueuePlace, queue_place
from .records import record_epoch, record_progress, record_start
from .sources import init_from_problem, source_checkpoint
from .submission import IdempotencyConflict, JobIsFinal, cancel, request_hash, submit
from .sweeps import cancel_sweep, create_sweep

__all__ = [
    "Capabilities",
    "CheckpointFile",
    "CheckpointInUse",
    "ExpiredFiles",
    "IdempotencyConflict",
    "JobIsFinal",
    "JobNotEnded",
    "Lease",
    "PriorityFixed",
    "QueuePlace",
    "cancel",
    "cancel_sweep",
    "claim",
    "create_sweep",
    "delete_checkpoint",
    "delete_job",
    "expire_checkpoints",
    "fail",
    "has_queued",
    "heartbeat",
    "holds",
    "init_from_problem",
    "is_deleted",
    "queue_place",
    "record_epoch",
    "record_progress",
    "record_start",
    "release",
    "request_hash",
    "requeue_expired",
    "source_checkpoint",
    "submit",
    "succeed",
    "update_job",
    "waiting_reason",
]
