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
)

__all__ = [
    "ChecksumMismatch",
    "Client",
    "Conflict",
    "Download",
    "FieldError",
    "HTTPError",
    "InvalidRequest",
    "NotFound",
    "ServerUnreachable",
    "TrainqError",
    "Unauthorized",
]
