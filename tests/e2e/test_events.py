from __future__ import annotations

from tests.e2e.conftest import Service
from tests.support.sse import parse_events

EPOCHS = 3


def test_the_event_stream_follows_a_real_job_from_queue_to_end(service: Service) -> None:
    job_id = service.submit("watched", dataset="digits", model="small_cnn", epochs=EPOCHS)
    with service.http.stream("GET", f"/jobs/{job_id}/events", timeout=120) as response:
        lines = response.iter_lines()
        events = parse_events(lines)
        first = next(events)
        assert (first.name, first.data["status"]) == ("status", "queued")
        service.start_worker()
        rest = list(events)
    durable = [e for e in rest if e.name not in {"progress", "log"}]
    assert [e.data["status"] for e in durable if e.name == "status"] == ["running", "succeeded"]
    assert [e.data["epoch"] for e in durable if e.name == "epoch"] == list(range(1, EPOCHS + 1))
    assert any(e.name == "checkpoint" and e.data["epoch"] == EPOCHS for e in durable)
    assert (rest[-1].name, rest[-1].data) == ("end", {"status": "succeeded"})
    logged = [line for e in rest if e.name == "log" for line in e.data["lines"]]
    assert any(f"epoch {EPOCHS}/{EPOCHS}" in line for line in logged), logged

    log = service.http.get(f"/jobs/{job_id}/logs")
    assert log.status_code == 200 and log.headers["content-type"].startswith("text/plain")
    assert "attempt 1 starts in process" in log.text.splitlines()[0]
    assert all(line in log.text for line in logged)
    last = service.http.get(f"/jobs/{job_id}/logs", params={"tail": 1}).text
    assert last == log.text.splitlines(keepends=True)[-1]
