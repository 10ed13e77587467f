"""A job's event stream (GET /jobs/{id}/events, Server-Sent Events) as typed events.

The server sends `status`, `epoch` and `checkpoint` events (with ids, to resume after), `progress`
snapshots and `log` lines while the job runs, then one `end`. Each becomes one frozen object here;
an event name this client does not know is skipped, so a newer server does not break it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

logger = logging.getLogger(__name__)

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class JobError:
    """Why an attempt failed: a reason code and a message for a person."""

    reason: str
    message: str


@dataclass(frozen=True)
class StatusEvent:
    """The job changed status (queued, running, and how it ended)."""

    status: str
    attempt: int
    error: JobError | None
    at: str
    event_id: str | None = None


@dataclass(frozen=True)
class EpochEvent:
    """An epoch finished: its metric row."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float
    duration_seconds: float
    samples_per_second: float
    attempt: int
    event_id: str | None = None


@dataclass(frozen=True)
class CheckpointEvent:
    """A checkpoint file was listed; `url` downloads it."""

    epoch: int
    size_bytes: int
    sha256: str
    is_best: bool
    url: str
    created_at: str
    event_id: str | None = None


@dataclass(frozen=True)
class ProgressEvent:
    """How far the running epoch is (not stored: a stream that resumes gets the current one)."""

    epoch: int
    progress: float


@dataclass(frozen=True)
class LogEvent:
    """New lines of the training log."""

    attempt: int
    lines: tuple[str, ...]
    event_id: str | None = None


@dataclass(frozen=True)
class EndEvent:
    """The last event: the job has ended with `status`; the stream closes."""

    status: str


Event = StatusEvent | EpochEvent | CheckpointEvent | ProgressEvent | LogEvent | EndEvent


@dataclass(frozen=True)
class RawEvent:
    """One Server-Sent Event as it came: its name, its data (JSON text) and its id."""

    name: str
    data: str
    id: str | None


def parse_sse(lines: Iterable[str]) -> Iterator[RawEvent]:
    """The events in the lines of a text/event-stream body (the WHATWG rules, minus `retry`);
    comments (keep-alives) are skipped."""
    name, data, event_id = "message", list[str](), None
    for line in lines:
        if line == "":
            if data:
                yield RawEvent(name, "\n".join(data), event_id)
            name, data, event_id = "message", [], None
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value


def typed_event(raw: RawEvent) -> Event | None:
    """The typed event, or None for an event name this client does not know."""
    data = json.loads(raw.data)
    match raw.name:
        case "status":
            error = data.get("error")
            return StatusEvent(
                status=data["status"],
                attempt=data["attempt"],
                error=JobError(error["reason"], error["message"]) if error else None,
                at=data["at"],
                event_id=raw.id,
            )
        case "epoch":
            return EpochEvent(**_known(EpochEvent, data), event_id=raw.id)
        case "checkpoint":
            return CheckpointEvent(**_known(CheckpointEvent, data), event_id=raw.id)
        case "progress":
            return ProgressEvent(epoch=data["epoch"], progress=data["progress"])
        case "log":
            return LogEvent(attempt=data["attempt"], lines=tuple(data["lines"]), event_id=raw.id)
        case "end":
            return EndEvent(status=data["status"])
    logger.debug("skipping an event this client does not know: %s", raw.name)
    return None


def _known(kind: type[EpochEvent | CheckpointEvent], data: Mapping[str, Any]) -> dict[str, Any]:
    # A newer server may add fields; only the ones this client knows are taken.
    names = {field.name for field in fields(kind)} - {"event_id"}
    return {name: data[name] for name in names}
