"""A Python client for the trainq HTTP API, and the `trainq` command built on it."""

from trainq.client import Client
from trainq.download import Download
from trainq.errors import (
    ChecksumMismatch,
    Conflict,
    FieldError,
    HTTPError,
    InvalidRequest,
    NotFound,
    ServerUnreachable,
    TrainqError,
    Unauthorized,
    WaitTimedOut,
)
from trainq.job_events import (
    CheckpointEvent,
    EndEvent,
    EpochEvent,
    Event,
    JobError,
    LogEvent,
    ProgressEvent,
    StatusEvent,
)

__all__ = [
    "CheckpointEvent",
    "ChecksumMismatch",
    "Client",
    "Conflict",
    "Download",
    "EndEvent",
    "EpochEvent",
    "Event",
    "FieldError",
    "HTTPError",
    "InvalidRequest",
    "JobError",
    "LogEvent",
    "NotFound",
    "ProgressEvent",
    "ServerUnreachable",
    "StatusEvent",
    "TrainqError",
    "Unauthorized",
    "WaitTimedOut",
]
