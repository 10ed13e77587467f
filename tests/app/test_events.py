from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from app import queue
from app.artifacts import log_path
from app.main import create_app
from app.settings import Settings
from tests.factories import COMPLETED, ONE_CPU, epoch_metrics, submit_job
from tests.support.polling import wait_for
from tests.support.processes import free_port
from tests.support.sse import Event, parse_events

LEASE_S = 60.0


def finished_job(engine: Engine, epochs: int = 2) -> str:
    job = submit_job(engine)
    lease = queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU)
    assert lease is not None
    for epoch in range(1, epochs + 1):
        checkpoint = queue.CheckpointFile(
            epoch=epoch, file_name=f"epoch-{epoch:04d}.pt", size_bytes=1, sha256="a" * 64, is_best=True
        )
        queue.record_epoch(
            engine, lease=lease, metrics=epoch_metrics(epoch), progress=epoch / epochs, checkpoint=checkpoint
        )
    assert queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=COMPLETED)
    return job.id


def running_job_with_log(engine: Engine, settings: Settings, text: str) -> tuple[str, Path]:
    """A claimed job whose first attempt's log already holds `text`."""
    job = submit_job(engine)
    assert queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU) is not None
    log = log_path(settings.artifacts_dir / job.id, 1)
    log.parent.mkdir(parents=True)
    log.write_text(text)
    return job.id, log


def read_all(client: TestClient | httpx.Client, job_id: str, last_event_id: str | None = None) -> list[Event]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with client.stream("GET", f"/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(parse_events(response.iter_lines()))


def test_a_finished_job_replays_its_history_in_order_and_the_stream_closes(
    client: TestClient, engine: Engine
) -> None:
    job_id = finished_job(engine)
    events = read_all(client, job_id)
    assert [(e.name, e.data.get("status") or e.data.get("epoch")) for e in events] == [
        ("status", "queued"),
        ("status", "running"),
        ("epoch", 1),
        ("checkpoint", 1),
        ("epoch", 2),
        ("checkpoint", 2),
        ("status", "succeeded"),
        ("end", "succeeded"),
    ]
    assert events[1].data["attempt"] == 1
    assert events[2].data["val_loss"] == pytest.approx(1.1)
    assert events[3].data["url"] == f"/jobs/{job_id}/checkpoints/1"
    ids = [e.id for e in events[:-1]]
    assert None not in ids and len(set(ids)) == len(ids)
    assert events[-1].id is None


def test_a_reconnect_with_last_event_id_gets_exactly_what_it_missed(
    client: TestClient, engine: Engine
) -> None:
    job_id = finished_job(engine)
    first = read_all(client, job_id)
    resumed = read_all(client, job_id, last_event_id=first[2].id)
    assert [(e.name, e.id) for e in resumed] == [(e.name, e.id) for e in first[3:]]
    assert [e.name for e in read_all(client, job_id, last_event_id=first[-2].id)] == ["end"]


@pytest.mark.parametrize(
    "last_event_id",
    ["nope", "1", "-1.0", "1.x", "+1.0", "1_0.0", "9223372036854775808.0", "0.9223372036854775808"],
)
def test_a_last_event_id_the_stream_never_sent_is_422(
    client: TestClient, engine: Engine, last_event_id: str
) -> None:
    job_id = finished_job(engine)
    response = client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": last_event_id})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "last-event-id"]


def test_a_last_event_id_past_the_newest_event_is_422_not_a_stream_that_never_ends(
    client: TestClient, engine: Engine
) -> None:
    job_id = finished_job(engine)
    newest = max(int(e.id.split(".")[0]) for e in read_all(client, job_id) if e.id is not None)
    for last_event_id in (f"{newest + 1}.0", "9223372036854775807.0"):
        response = client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": last_event_id})
        assert response.status_code == 422, last_event_id
    assert [e.name for e in read_all(client, job_id, last_event_id=f"{newest}.0")] == ["end"]


def test_events_of_an_unknown_job_are_404(client: TestClient) -> None:
    assert client.get("/jobs/nope/events").status_code == 404
    assert client.get("/jobs/nope/logs").status_code == 404


@pytest.fixture
def server(settings: Settings) -> Iterator[tuple[httpx.Client, Engine]]:
    """A real uvicorn server in this process, so a test can see what its engine does."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout_s=10, what="uvicorn to start")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield http, app.state.engine
    finally:
        server.should_exit = True
        thread.join(10)


def test_events_arrive_live_and_the_stream_ends_with_the_job(
    server: tuple[httpx.Client, Engine], engine: Engine
) -> None:
    http, _ = server
    job = submit_job(engine)
    lease = queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU)
    assert lease is not None
    with http.stream("GET", f"/jobs/{job.id}/events") as response:
        events = parse_events(response.iter_lines())
        assert [next(events).name for _ in range(3)] == ["status", "status", "progress"]
        queue.record_progress(engine, lease=lease, epoch=1, progress=0.25)
        assert next(events) == Event("progress", {"epoch": 1, "progress": 0.25}, None)
        queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1), progress=0.5)
        epoch = next(events)
        assert (epoch.name, epoch.data["epoch"]) == ("epoch", 1)
        queue.cancel(engine, job_id=job.id)
        rest = list(events)
    assert [(e.name, e.data["status"]) for e in rest if e.name != "progress"] == [
        ("status", "cancelled"),
        ("end", "cancelled"),
    ]


def test_new_log_lines_are_streamed_and_a_reconnect_resumes_after_the_last_one(
    server: tuple[httpx.Client, Engine], engine: Engine, settings: Settings
) -> None:
    http, _ = server
    job_id, log = running_job_with_log(engine, settings, "written before the stream opened\n")
    with http.stream("GET", f"/jobs/{job_id}/events") as response:
        events = parse_events(response.iter_lines())
        assert [next(events).name for _ in range(3)] == ["status", "status", "progress"]
        with log.open("a") as file:
            file.write("epoch 1 done\nepoch 2 half")
        seen = next(e for e in events if e.name == "log")
    assert seen.data == {"attempt": 1, "lines": ["epoch 1 done"]}
    with log.open("a") as file:
        file.write("\nepoch 2 done\n")
    queue.cancel(engine, job_id=job_id)
    resumed = read_all(http, job_id, last_event_id=seen.id)
    logged = [line for e in resumed if e.name == "log" for line in e.data["lines"]]
    assert logged == ["epoch 2 half", "epoch 2 done"]


def test_open_streams_cost_the_database_a_few_queries_per_second_in_total(
    server: tuple[httpx.Client, Engine], engine: Engine
) -> None:
    http, server_engine = server
    streams = 20
    jobs = [submit_job(engine).id for _ in range(streams)]
    for _ in jobs:
        assert queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU) is not None
    opened = threading.Barrier(streams + 1)
    stop = threading.Event()

    def watch(job_id: str) -> None:
        with http.stream("GET", f"/jobs/{job_id}/events") as response:
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("event: progress"):
                    break
            opened.wait()
            stop.wait()

    threads = [threading.Thread(target=watch, args=(job_id,), daemon=True) for job_id in jobs]
    for thread in threads:
        thread.start()
    opened.wait(timeout=30)
    queries = 0

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        nonlocal queries
        queries += not statement.startswith("BEGIN")

    event.listen(server_engine, "before_cursor_execute", count)
    window = threading.Event()
    window.wait(3.0)  # the measurement window itself, not a synchronisation
    event.remove(server_engine, "before_cursor_execute", count)
    stop.set()
    # One poll of new events every 0.5 s and one of progress every second, whatever the number of streams.
    assert queries <= 3 * 3 + 3, f"{queries} queries in 3 s with {streams} streams open"
    queue.requeue_expired(engine)


def test_a_log_read_then_a_stream_from_its_offset_misses_no_line_and_repeats_none(
    server: tuple[httpx.Client, Engine], engine: Engine, settings: Settings
) -> None:
    http, _ = server
    job_id, log = running_job_with_log(engine, settings, "one\ntwo\n")
    tail = http.get(f"/jobs/{job_id}/logs", params={"tail": 1})
    assert tail.text == "two\n"
    offset = tail.headers["Trainq-Log-Offset"]
    with log.open("a") as file:
        file.write("three\n")  # written between the log read and the stream's start
    queue.cancel(engine, job_id=job_id)
    events = read_all(http, job_id, last_event_id=f"0.{offset}")
    assert [e.data["status"] for e in events if e.name == "status"] == ["queued", "running", "cancelled"]
    assert [line for e in events if e.name == "log" for line in e.data["lines"]] == ["three"]
