"""A job's live event stream (Server-Sent Events) and its training log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import Engine
from sse_starlette import EventSourceResponse

from app.artifacts import job_dir
from app.deps import EngineDep, JobDep, KnownQueryRoute, SettingsDep
from app.logs import read_log
from app.queue import outbox
from app.schemas import JOB_LOOKUP
from app.streams import Cursor, EventHub, job_stream

router = APIRouter(route_class=KnownQueryRoute, prefix="/jobs", tags=["jobs"])

KEEPALIVE_S = 15
LOG_OFFSET_HEADER = "Trainq-Log-Offset"
MAX_TAIL_LINES = 100_000

EVENTS_DESCRIPTION = """Server-Sent Events: `status`, `epoch` and `checkpoint` events (with ids), `progress`
snapshots (no id) and new `log` lines while the job runs, then one `end` event, after which the stream
closes. The stream first replays the job's past events, or only those after the `Last-Event-ID` header."""


# No response_class: it would document the JSON error responses as its media type too.
@router.get(
    "/{job_id}/events",
    description=EVENTS_DESCRIPTION,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}, **JOB_LOOKUP},
)
def job_events(
    job: JobDep,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    last_event_id: Annotated[
        str | None,
        Header(max_length=64, description="The id of the last event received, to resume after it."),
    ] = None,
) -> EventSourceResponse:
    cursor = _resume_from(last_event_id, engine)
    hub: EventHub = request.app.state.event_hub
    stream = job_stream(
        hub, engine, job_id=job.id, job_dir=job_dir(settings.artifacts_dir, job.id), cursor=cursor
    )
    return EventSourceResponse(stream, ping=KEEPALIVE_S)


def _resume_from(last_event_id: str | None, engine: Engine) -> Cursor:
    """422 for an id no stream sent: past the newest stored event, a stream would wait forever
    for an event it would then pass on (its job's end too)."""
    if last_event_id is None:
        return Cursor()
    try:
        cursor = Cursor.parse(last_event_id)
    except ValueError:
        cursor = None
    if cursor is None or cursor.event_id > outbox.last_event_id(engine):
        detail = [
            {
                "loc": ["header", "last-event-id"],
                "msg": "Last-Event-ID is not an id this stream sent: resend the last `id:` you received, or none",
                "type": "value_error",
            }
        ]
        raise HTTPException(status_code=422, detail=detail)
    return cursor


@router.get(
    "/{job_id}/logs",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **JOB_LOOKUP},
)
def job_logs(
    job: JobDep,
    settings: SettingsDep,
    tail: Annotated[int | None, Query(ge=1, le=MAX_TAIL_LINES, description="Only the last N lines.")] = None,
    attempt: Annotated[int | None, Query(ge=1, le=1000, description="Only this attempt's log.")] = None,
) -> PlainTextResponse:
    """The training process's log, every attempt in order (each starts with a line naming it).

    Without `attempt`, the `Trainq-Log-Offset` header tells how far into the logs this response
    read: an event stream opened with `Last-Event-ID: 0.<offset>` replays every event and then
    carries exactly the log lines after this response's."""
    text, size = read_log(job_dir(settings.artifacts_dir, job.id), attempt=attempt, tail=tail)
    headers = {LOG_OFFSET_HEADER: str(size)} if attempt is None else {}
    return PlainTextResponse(text, headers=headers)
