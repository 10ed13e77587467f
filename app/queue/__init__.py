"""The only place that changes a job's state in SQL.

Routes and workers both call these named operations:
- submission: submit (idempotent), cancel;
- leases: has_queued, claim, requeue_expired, holds, heartbeat, and the ends of an attempt:
  succeed, fail (retried while attempts remain, for machine failures), release;
- records: what a running job reports (start, progress, epochs, checkpoints).
"""

from .leases import (
    RETRYABLE_REASONS,
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
from .records import CheckpointFile, record_checkpoint, record_epoch, record_progress, record_start
from .submission import IdempotencyConflict, JobIsFinal, cancel, request_hash, submit

__all__ = [
    "RETRYABLE_REASONS",
    "CheckpointFile",
    "IdempotencyConflict",
    "JobIsFinal",
    "Lease",
    "cancel",
    "claim",
    "fail",
    "has_queued",
    "heartbeat",
    "holds",
    "record_checkpoint",
    "record_epoch",
    "record_progress",
    "record_start",
    "release",
    "request_hash",
    "requeue_expired",
    "submit",
    "succeed",
]
