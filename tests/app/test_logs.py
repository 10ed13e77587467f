from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.artifacts import log_path
from app.logs import LogFollower, read_log
from app.settings import Settings
from tests.factories import submit_job


def write_attempts(job_dir: Path) -> None:
    log_path(job_dir, 1).parent.mkdir(parents=True)
    log_path(job_dir, 1).write_text("one a\none b\n")
    log_path(job_dir, 2).write_text("two a\ntwo b\ntwo c\n")
    (job_dir / "logs" / "notes.txt").write_text("not a log\n")


def test_the_log_is_every_attempt_in_order_or_one_attempt_or_its_tail(tmp_path: Path) -> None:
    write_attempts(tmp_path)
    everything = "one a\none b\ntwo a\ntwo b\ntwo c\n"
    assert read_log(tmp_path) == (everything, len(everything))
    assert read_log(tmp_path, attempt=1) == ("one a\none b\n", 12)
    assert read_log(tmp_path, tail=4) == ("one b\ntwo a\ntwo b\ntwo c\n", len(everything))
    assert read_log(tmp_path / "never-ran") == ("", 0)


def test_the_follower_delivers_complete_lines_once_in_bounded_chunks(tmp_path: Path) -> None:
    write_attempts(tmp_path)
    follower = LogFollower(tmp_path, offset=0, max_lines=2)
    chunks = follower.read_new()
    assert [(c.attempt, c.lines) for c in chunks] == [
        (1, ["one a", "one b"]),
        (2, ["two a", "two b"]),
        (2, ["two c"]),
    ]
    resumed = LogFollower(tmp_path, offset=chunks[1].end_offset)
    assert [c.lines for c in resumed.read_new()] == [["two c"]]
    with log_path(tmp_path, 2).open("a") as file:
        file.write("two d\ntwo e (unfinished)")
    assert [c.lines for c in follower.read_new()] == [["two d"]]
    assert [c.lines for c in follower.read_new(partial=True)] == [["two e (unfinished)"]]
    assert follower.read_new(partial=True) == []


def test_the_logs_endpoint_serves_text_with_tail_and_attempt(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    job = submit_job(engine)
    assert client.get(f"/jobs/{job.id}/logs").text == ""
    write_attempts(settings.artifacts_dir / job.id)
    response = client.get(f"/jobs/{job.id}/logs", params={"tail": 2})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "two b\ntwo c\n"
    assert (
        client.get(f"/jobs/{job.id}/logs", params={"attempt": 2, "tail": 5}).text == "two a\ntwo b\ntwo c\n"
    )
    assert client.get(f"/jobs/{job.id}/logs", params={"tail": 0}).status_code == 422
