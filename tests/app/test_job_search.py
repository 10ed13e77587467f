"""GET /jobs: filters, sorts, the summary each item carries, and 422 for what it does not take."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app import queue
from app.contract import RunResults, StopReason
from app.db import write_session
from app.models import JobStatus, Sweep
from tests.factories import ONE_CPU, epoch_metrics, submit_job
from tests.support.job_rows import insert_job
from tests.support.keys import ALICE, BOB, auth

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _names(client: TestClient, **params: str | list[str]) -> list[str | None]:
    response = client.get("/jobs", params=params)
    assert response.status_code == 200, response.text
    return [job["name"] for job in response.json()["items"]]


def test_tag_filters_must_all_match(client: TestClient) -> None:
    client.post("/jobs", json={"name": "both", "tags": ["resnet", "baseline"]})
    client.post("/jobs", json={"name": "resnet", "tags": ["resnet"]})
    client.post("/jobs", json={"name": "none"})
    assert _names(client, tag="resnet") == ["resnet", "both"]
    assert _names(client, tag=["resnet", "baseline"]) == ["both"]
    assert _names(client, tag=["resnet", "other"]) == []


def test_tag_filters_follow_a_patch(client: TestClient) -> None:
    job_id = client.post("/jobs", json={"name": "moved", "tags": ["before"]}).json()["id"]
    client.patch(f"/jobs/{job_id}", json={"tags": ["after"]})
    assert (_names(client, tag="before"), _names(client, tag="after")) == ([], ["moved"])


def test_name_filter_is_a_substring_in_any_case_with_wildcards_taken_literally(client: TestClient) -> None:
    for name in ("ResNet 50%", "resnet_small", "vgg", "resnetXsmall"):
        client.post("/jobs", json={"name": name})
    client.post("/jobs", json={})
    assert _names(client, name="RESNET") == ["resnetXsmall", "resnet_small", "ResNet 50%"]
    assert _names(client, name="50%") == ["ResNet 50%"]
    assert _names(client, name="t_s") == ["resnet_small"]
    assert _names(client, name="%") == ["ResNet 50%"]


def test_model_and_dataset_filters_match_the_hyperparameters(client: TestClient) -> None:
    client.post("/jobs", json={"name": "mlp digits", "hyperparameters": {"model": "mlp"}})
    client.post("/jobs", json={"name": "cnn fake", "hyperparameters": {"dataset": "fake"}})
    client.post("/jobs", json={"name": "cnn digits"})
    assert _names(client, model="mlp") == ["mlp digits"]
    assert _names(client, model="small_cnn") == ["cnn digits", "cnn fake"]
    assert _names(client, dataset="fake") == ["cnn fake"]
    assert _names(client, model="small_cnn", dataset="digits") == ["cnn digits"]
    assert _names(client, model="nope") == []


def test_created_filters_take_iso_times_and_read_a_naive_one_as_utc(
    client: TestClient, engine: Engine
) -> None:
    for hours in range(4):
        insert_job(engine, name=f"h{hours}", created_at=T0 + timedelta(hours=hours))
    assert _names(client, created_after="2026-01-01T13:00:00") == ["h3", "h2", "h1"]
    assert _names(client, created_before="2026-01-01T13:00:00Z") == ["h0"]
    # 15:00 in UTC+2 is 13:00 UTC; created_before is exclusive.
    after, before = "2026-01-01T15:00:00+02:00", "2026-01-01T15:00"
    assert _names(client, created_after=after, created_before=before) == ["h2", "h1"]
    assert client.get("/jobs", params={"created_after": "yesterday"}).status_code == 422


def test_sweep_filter_lists_only_that_sweeps_jobs(client: TestClient, engine: Engine) -> None:
    with write_session(engine) as session:
        session.add(Sweep(id="5" * 32, method="grid", base={}, space={}))
    insert_job(engine, name="in sweep", sweep_id="5" * 32)
    insert_job(engine, name="alone")
    assert _names(client, sweep="5" * 32) == ["in sweep"]
    assert {job["sweep"] for job in client.get("/jobs").json()["items"]} == {None, "5" * 32}


def test_filters_combine_with_status_and_ownership(keyed: TestClient, engine: Engine) -> None:
    keyed.post("/jobs", json={"name": "alice a", "tags": ["a"]}, headers=auth(ALICE))
    keyed.post("/jobs", json={"name": "bob a", "tags": ["a"]}, headers=auth(BOB))
    listed = keyed.get("/jobs", params={"tag": "a", "status": "queued"}, headers=auth(ALICE)).json()
    assert [job["name"] for job in listed["items"]] == ["alice a"]
    assert (
        keyed.get("/jobs", params={"tag": "a", "status": "running"}, headers=auth(ALICE)).json()["items"]
        == []
    )


def _finished(engine: Engine, name: str, *, accuracy: float | None, seconds: float | None, at: int) -> None:
    started = None if seconds is None else T0 + timedelta(hours=at)
    insert_job(
        engine,
        name=name,
        created_at=T0 + timedelta(hours=at),
        status=JobStatus.succeeded if started else JobStatus.cancelled,
        started_at=started,
        finished_at=None if started is None else started + timedelta(seconds=seconds or 0),
        best_val_accuracy=accuracy,
    )


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-created_at", ["d", "c", "b", "a"]),
        ("created_at", ["a", "b", "c", "d"]),
        ("-best_val_accuracy", ["b", "c", "a", "d"]),
        ("best_val_accuracy", ["c", "a", "b", "d"]),
        ("name", ["a", "b", "c", "d"]),
        ("-name", ["d", "c", "b", "a"]),
        ("-duration", ["c", "a", "b", "d"]),
        ("duration", ["b", "a", "c", "d"]),
    ],
)
def test_every_sort_orders_with_nulls_last_across_pages(
    client: TestClient, engine: Engine, sort: str, expected: list[str]
) -> None:
    # a and c tie on accuracy (the id breaks the tie); d never ran: no accuracy, no duration.
    _finished(engine, "a", accuracy=0.5, seconds=60, at=0)
    _finished(engine, "b", accuracy=0.9, seconds=10, at=1)
    _finished(engine, "c", accuracy=0.5, seconds=600, at=2)
    _finished(engine, "d", accuracy=None, seconds=None, at=3)
    seen: list[str] = []
    page = client.get("/jobs", params={"sort": sort, "limit": 1}).json()
    while True:
        seen += [job["name"] for job in page["items"]]
        if page["next_cursor"] is None:
            break
        page = client.get("/jobs", params={"sort": sort, "limit": 1, "cursor": page["next_cursor"]}).json()
    if sort.endswith("best_val_accuracy"):
        # Ties go by id, in the sort's direction.
        ids = {job["name"]: job["id"] for job in client.get("/jobs").json()["items"]}
        tied = sorted(["a", "c"], key=ids.__getitem__, reverse=sort.startswith("-"))
        expected = [name for name in expected if name not in tied]
        expected[1 if sort.startswith("-") else 0 : 1 if sort.startswith("-") else 0] = tied
    assert seen == expected


def test_a_cursor_works_only_with_the_sort_it_was_made_for(client: TestClient) -> None:
    for _ in range(3):
        client.post("/jobs", json={})
    cursor = client.get("/jobs", params={"sort": "name", "limit": 1}).json()["next_cursor"]
    response = client.get("/jobs", params={"sort": "-created_at", "cursor": cursor})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "cursor"] and "sort=name" in error["msg"]
    assert client.get("/jobs", params={"sort": "name", "cursor": cursor}).status_code == 200
    assert client.get("/jobs", params={"sort": "fastest"}).status_code == 422


@pytest.mark.parametrize(
    ("path", "parameter"),
    [("/jobs", "stauts"), ("/jobs", "tags"), ("/health", "verbose"), ("/jobs/x/metrics", "after")],
)
def test_unknown_query_parameters_get_422_naming_them_and_the_known_ones(
    client: TestClient, path: str, parameter: str
) -> None:
    response = client.get(path, params={parameter: "1"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", parameter]
    assert f"'{parameter}'" in error["msg"]
    if path == "/jobs":
        assert "status" in error["msg"] and "tag" in error["msg"] and "sort" in error["msg"]


def test_unknown_query_parameters_are_refused_on_job_routes_before_the_lookup(client: TestClient) -> None:
    job_id = client.post("/jobs", json={}).json()["id"]
    assert client.get(f"/jobs/{job_id}?verbose=1").status_code == 422
    assert client.post(f"/jobs/{job_id}/cancel?force=1").status_code == 422
    assert client.get(f"/jobs/{job_id}").json()["status"] == "queued"
    assert client.post("/jobs?dry_run=true&dryrun=1", json={}).status_code == 422


def test_list_items_carry_the_summary_runs_are_compared_by(client: TestClient, engine: Engine) -> None:
    finished = submit_job(engine, "finished")
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    for epoch, accuracy in ((1, 0.6), (2, 0.8), (3, 0.7)):
        queue.record_epoch(
            engine, lease=lease, metrics=epoch_metrics(epoch, val_accuracy=accuracy), progress=0.5
        )
    results = RunResults(stop_reason=StopReason.early_stopping, best_epoch=2)
    assert queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=results)
    submit_job(engine, "running")
    assert queue.claim(engine, worker_id="w2", lease_seconds=60, capabilities=ONE_CPU) is not None
    submit_job(engine, "waiting")
    items = {job["name"]: job for job in client.get("/jobs").json()["items"]}
    done = items["finished"]
    assert (done["best_val_accuracy"], done["best_epoch"], done["stop_reason"]) == (0.8, 2, "early_stopping")
    assert done["id"] == finished.id
    assert done["duration_seconds"] is not None and done["duration_seconds"] >= 0
    assert (done["tags"], done["notes"], done["priority"], done["sweep"]) == ([], None, 0, None)
    assert items["running"]["duration_seconds"] >= 0
    assert (items["running"]["best_val_accuracy"], items["running"]["stop_reason"]) == (None, None)
    assert items["waiting"]["duration_seconds"] is None


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "params",
    [
        {"created_after": "0001-01-01T00:00:00+05:00"},
        {"created_before": "not a time"},
        {"name": "nul\x00"},
        {"model": "tab\there"},
        {"tag": "a,b"},
        {"sort": "created_at", "cursor": _cursor('["created_at","0001-01-01T00:00:00+05:00","x",null]')},
        {"sort": "created_at", "cursor": _cursor('["created_at",null,"x",null]')},
        {"sort": "name", "cursor": _cursor('["name",5,"x",null]')},
        {"sort": "duration", "cursor": _cursor('["duration",1.0,"x",null]')},
        {"sort": "best_val_accuracy", "cursor": _cursor('["best_val_accuracy",' + "9" * 400 + ',"x",null]')},
        {"sort": "best_val_accuracy", "cursor": _cursor('["best_val_accuracy",true,"x",null]')},
        {"cursor": _cursor('{"not": "a list"}')},
    ],
)
def test_bad_filters_and_cursors_get_422(client: TestClient, params: dict[str, str]) -> None:
    client.post("/jobs", json={"name": "one"})
    response = client.get("/jobs", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "query"


def test_a_cursor_keeps_its_meaning_when_its_time_has_no_zone(client: TestClient) -> None:
    for name in ("a", "b"):
        client.post("/jobs", json={"name": name})
    first = client.get("/jobs", params={"sort": "-created_at", "limit": 1}).json()
    raw = json.loads(base64.urlsafe_b64decode(first["next_cursor"] + "=" * 4))
    raw[1] = raw[1].removesuffix("+00:00").removesuffix("Z")
    response = client.get("/jobs", params={"cursor": _cursor(json.dumps(raw))})
    assert [job["name"] for job in response.json()["items"]] == ["a"]
