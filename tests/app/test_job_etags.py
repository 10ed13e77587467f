"""ETags of GET /jobs/{id} and GET /jobs/{id}/metrics: each kind of change changes them,
If-None-Match with the current one gets an empty 304, and a cached body is never served stale."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import DateTime, Engine, event, literal

from app import queue
from app.contract import CheckpointFile
from app.job_etags import BodyCache, Current, KnownVersions
from app.queue import workers
from app.queue.deletion import delete_checkpoint
from app.queue.workers import WorkerCard
from tests.factories import COMPLETED, ONE_CPU, epoch_metrics, list_checkpoint, submit_job
from tests.support.databases import sqlite_only
from tests.support.keys import ALICE, BOB, auth

ROUTES = ("/jobs/{id}", "/jobs/{id}/metrics")


def _etag(client: TestClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200
    etag: str = response.headers["etag"]
    assert etag.startswith('W/"')
    return etag


def _claimed(engine: Engine, **hyperparameters: int) -> tuple[str, queue.Lease]:
    job = submit_job(engine, **hyperparameters)
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None and lease.job_id == job.id
    return job.id, lease


@pytest.mark.parametrize("route", ROUTES)
def test_a_matching_if_none_match_gets_an_empty_304_and_another_a_200(
    client: TestClient, engine: Engine, route: str
) -> None:
    path = route.format(id=submit_job(engine).id)
    etag = _etag(client, path)
    opaque = etag.removeprefix("W/")
    for matching in (etag, opaque, f'"other", {etag}', "*"):
        response = client.get(path, headers={"If-None-Match": matching})
        assert (response.status_code, response.content) == (304, b"")
        assert response.headers["etag"] == etag
    for other in ('W/"0123"', '"0123"', "garbage"):
        response = client.get(path, headers={"If-None-Match": other})
        assert response.status_code == 200
        assert response.headers["etag"] == etag
        assert response.json() == client.get(path).json()


def test_a_short_id_gets_the_same_etag_as_the_full_one(client: TestClient, engine: Engine) -> None:
    job_id = submit_job(engine).id
    etag = _etag(client, f"/jobs/{job_id}")
    response = client.get(f"/jobs/{job_id[:8]}", headers={"If-None-Match": etag})
    assert response.status_code == 304


def test_status_epochs_and_the_end_each_change_both_etags(client: TestClient, engine: Engine) -> None:
    job = submit_job(engine)
    seen = {route: [_etag(client, route.format(id=job.id))] for route in ROUTES}
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    steps = [
        lambda: None,  # the claim above: queued -> running
        lambda: queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1), progress=0.5),
        lambda: queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(2), progress=1.0),
        lambda: queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=COMPLETED),
    ]
    for step in steps:
        step()
        for route in ROUTES:
            etag = _etag(client, route.format(id=job.id))
            assert etag not in seen[route]
            seen[route].append(etag)
    assert [row["epoch"] for row in client.get(f"/jobs/{job.id}/metrics").json()] == [1, 2]
    assert client.get(f"/jobs/{job.id}").json()["status"] == "succeeded"


def test_a_checkpoint_listed_or_deleted_changes_the_etag(client: TestClient, engine: Engine) -> None:
    job_id, lease = _claimed(engine, keep_checkpoints_last=2)
    path = f"/jobs/{job_id}"
    before = _etag(client, path)
    for epoch in (1, 2):
        checkpoint = CheckpointFile(
            epoch=epoch, file_name=f"epoch-{epoch}.pt", size_bytes=10, sha256="0" * 64, is_best=False
        )
        assert list_checkpoint(engine, lease=lease, checkpoint=checkpoint) is not None
    listed = _etag(client, path)
    assert listed != before
    # Deleting a checkpoint changes no column of the job: only its rows.
    assert delete_checkpoint(engine, job_id=job_id, epoch=1) == "epoch-1.pt"
    after = _etag(client, path)
    assert after not in {before, listed}
    assert [
        c["epoch"] for c in client.get(path, headers={"If-None-Match": listed}).json()["checkpoints"]
    ] == [2]


def test_edits_of_tags_notes_and_name_change_the_etag_and_the_cached_body(
    client: TestClient, engine: Engine
) -> None:
    job_id = submit_job(engine).id
    path = f"/jobs/{job_id}"
    etags = {_etag(client, path)}
    for edit in ({"tags": ["a"]}, {"notes": "first"}, {"notes": "second"}, {"name": "renamed"}):
        assert client.patch(path, json=edit).status_code == 200
        response = client.get(path)
        assert {key: response.json()[key] for key in edit} == edit
        assert response.headers["etag"] not in etags
        etags.add(response.headers["etag"])


def test_a_finished_jobs_cached_body_follows_every_change(client: TestClient, engine: Engine) -> None:
    job_id, lease = _claimed(engine)
    queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1), progress=1.0)
    queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=COMPLETED)
    path = f"/jobs/{job_id}"
    first = client.get(path)
    assert client.get(path).content == first.content  # served from the cache: the same bytes
    for notes in ("one", "two", None):
        assert client.patch(path, json={"notes": notes}).status_code == 200
        assert client.get(path).json()["notes"] == notes
    # The metrics route's bodies are cached per after_epoch, apart from the job's.
    assert client.get(f"{path}/metrics?after_epoch=1").json() == []
    assert [row["epoch"] for row in client.get(f"{path}/metrics").json()] == [1]
    assert client.get(path).json()["metrics"][0]["epoch"] == 1


def test_a_queued_jobs_etag_changes_with_its_place_in_the_queue(client: TestClient, engine: Engine) -> None:
    ahead = submit_job(engine)
    job = submit_job(engine)
    path = f"/jobs/{job.id}"
    before = client.get(path)
    assert before.json()["queue_position"] == 2
    queue.cancel(engine, job_id=ahead.id, owner=None)
    after = client.get(path, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.json()["queue_position"] == 1
    assert after.headers["etag"] != before.headers["etag"]


def test_a_queued_jobs_etag_changes_when_a_worker_comes_or_goes(client: TestClient, engine: Engine) -> None:
    job = submit_job(engine)
    path = f"/jobs/{job.id}"
    before = client.get(path)
    assert before.json()["waiting_reason"] == "no worker is running"
    card = WorkerCard(id="host:1", host="host", pid=1, capabilities=ONE_CPU, memory_bytes=2**30, version="0")
    workers.register(engine, card=card, lease_seconds=60)
    after = client.get(path, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.json()["waiting_reason"] is None


def test_a_queued_jobs_etag_changes_when_a_workers_heartbeat_runs_out_with_no_write(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = submit_job(engine)
    path = f"/jobs/{job.id}"
    card = WorkerCard(id="host:1", host="host", pid=1, capabilities=ONE_CPU, memory_bytes=2**30, version="0")
    workers.register(engine, card=card, lease_seconds=60)
    before = client.get(path)
    assert before.json()["waiting_reason"] is None
    an_hour_on = datetime.now(UTC) + timedelta(hours=1)

    def later(session: object, *, plus_s: float = 0.0) -> Any:
        return literal(an_hour_on + timedelta(seconds=plus_s), DateTime(timezone=True))

    monkeypatch.setattr(workers, "database_now", later)  # the heartbeat runs out; nothing is written
    after = client.get(path, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.json()["waiting_reason"] == "no worker is running"


@sqlite_only
def test_a_job_unchanged_since_its_last_get_is_answered_without_a_query(
    client: TestClient, engine: Engine
) -> None:
    job_id, lease = _claimed(engine)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    app_engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    event.listen(app_engine, "before_cursor_execute", count)
    path = f"/jobs/{job_id}"
    etag = _etag(client, path)
    assert statements
    statements.clear()
    for _ in range(2):
        assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert statements == []
    # A write by another connection (here the test's engine; a worker's, in service) is seen.
    queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1), progress=0.5)
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert [row["epoch"] for row in changed.json()["metrics"]] == [1]
    assert statements


@sqlite_only
def test_pollers_asking_at_once_after_a_change_share_one_read_of_the_version(
    client: TestClient, engine: Engine
) -> None:
    job_id, lease = _claimed(engine)
    path = f"/jobs/{job_id}"
    _etag(client, path)
    queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1), progress=0.5)
    version_reads: list[str] = []

    def count(*args: Any) -> None:
        if "max(epoch_metrics.id)" in args[2]:  # the version query (job_etags._VERSION)
            version_reads.append(args[2])

    app = client.app
    event.listen(app.state.engine, "before_cursor_execute", count)  # type: ignore[attr-defined]

    async def poll_at_once() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await asyncio.gather(*(http.get(path) for _ in range(20)))

    assert client.portal is not None
    responses = client.portal.call(poll_at_once)
    assert {response.status_code for response in responses} == {200}
    assert len({response.headers["etag"] for response in responses}) == 1
    assert [row["epoch"] for row in responses[0].json()["metrics"]] == [1]
    assert len(version_reads) == 1


def _current(*, lasting: bool) -> Current:
    return Current(job_id="j", version="v", fixed=True, lasting=lasting)


@pytest.mark.parametrize(("lasting", "reads"), [(True, 1), (False, 5)])
def test_a_version_read_is_shared_by_the_requests_that_wait_for_it_unless_the_job_is_queued(
    tmp_path: Path, lasting: bool, reads: int
) -> None:
    sqlite3.connect(tmp_path / "trainq.db").close()
    known = KnownVersions(f"sqlite:///{tmp_path / 'trainq.db'}")
    release = threading.Event()
    calls: list[int] = []

    def read() -> Current:
        calls.append(1)
        assert release.wait(timeout=60)
        return _current(lasting=lasting)

    async def five_at_once() -> list[Current]:
        asking = [asyncio.ensure_future(known.version(("j", None), read)) for _ in range(5)]
        await asyncio.sleep(0)  # each has asked, and waits for the first one's read
        release.set()
        return await asyncio.gather(*asking)

    assert asyncio.run(five_at_once()) == [_current(lasting=lasting)] * 5
    assert len(calls) == reads
    known.close()


def test_a_request_that_goes_away_leaves_the_shared_read_to_the_others_and_errors_reach_them_all(
    tmp_path: Path,
) -> None:
    sqlite3.connect(tmp_path / "trainq.db").close()
    known = KnownVersions(f"sqlite:///{tmp_path / 'trainq.db'}")
    release = threading.Event()

    def read() -> Current:
        assert release.wait(timeout=60)
        raise LookupError("job 'j' not found")

    async def one_leaves() -> list[BaseException | Current]:
        asking = [asyncio.ensure_future(known.version(("j", None), read)) for _ in range(3)]
        await asyncio.sleep(0)
        asking[0].cancel()
        release.set()
        return await asyncio.gather(*asking, return_exceptions=True)

    first, *others = asyncio.run(one_leaves())
    assert isinstance(first, asyncio.CancelledError)
    assert [str(error) for error in others] == ["job 'j' not found"] * 2
    known.close()


def test_another_owners_job_is_404_whatever_if_none_match_says(keyed: TestClient, engine: Engine) -> None:
    job_id = keyed.post("/jobs", json={}, headers=auth(ALICE)).json()["id"]
    etag = keyed.get(f"/jobs/{job_id}", headers=auth(ALICE)).headers["etag"]
    response = keyed.get(f"/jobs/{job_id}", headers={**auth(BOB), "If-None-Match": etag})
    assert response.status_code == 404
    assert "etag" not in response.headers


def test_the_body_cache_drops_the_least_recently_used_past_its_count_or_its_bytes() -> None:
    cache = BodyCache(size=2, max_bytes=10)

    def cached(*keys: str) -> list[str]:
        return [key for key in keys if cache.get((key,)) is not None]

    for key in ("a", "b"):
        cache.put((key,), b"1234")
    assert cached("a") == ["a"]  # a hit: now the most recent
    cache.put(("c",), b"1234")  # a third body: "b", the least recent, goes
    cache.put(("d",), b"123456789")  # 4 + 4 + 9 bytes > 10: "a" and "c" go
    cache.put(("e",), b"x" * 11)  # over the budget alone: not kept
    assert cached("b", "a", "c") == []
    assert cached("d") == ["d"]
    assert cached("e") == []
