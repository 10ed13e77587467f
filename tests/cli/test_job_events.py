"""Server-Sent Events become typed events; what this client does not know is left out, not an error."""

from __future__ import annotations

from trainq.job_events import (
    EndEvent,
    JobError,
    LogEvent,
    ProgressEvent,
    RawEvent,
    StatusEvent,
    parse_sse,
    typed_event,
)

STREAM = """: keep-alive

event: status
id: 3.0
data: {"status": "failed", "attempt": 2, "error": {"reason": "oom", "message": "out of memory"}, "at": "t"}

event: progress
data: {"epoch": 1, "progress": 0.5}

event: log
id: 3.120
data: {"attempt": 2, "lines": ["a", "b"]}

event: something_new
data: {"x": 1}

event: end
data: {"status": "failed"}

"""


def test_each_event_becomes_its_typed_object_in_order() -> None:
    events = [typed_event(raw) for raw in parse_sse(STREAM.splitlines())]
    assert events == [
        StatusEvent(
            status="failed", attempt=2, error=JobError("oom", "out of memory"), at="t", event_id="3.0"
        ),
        ProgressEvent(epoch=1, progress=0.5),
        LogEvent(attempt=2, lines=("a", "b"), event_id="3.120"),
        None,
        EndEvent(status="failed"),
    ]


def test_fields_a_newer_server_adds_are_ignored() -> None:
    data = (
        '{"epoch": 2, "size_bytes": 10, "sha256": "ab", "is_best": true, "url": "/u", '
        '"created_at": "t", "format": "new"}'
    )
    event = typed_event(RawEvent("checkpoint", data, "9.0"))
    assert event is not None and getattr(event, "url", None) == "/u"
