from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import col, select

from app import queue
from app.contract import (
    ClassMetrics,
    DatasetInfo,
    EvaluationMetrics,
    ExportFile,
    FailureReason,
    RunResults,
    StopReason,
)
from app.db import read_session
from app.models import Checkpoint, EpochMetric, Job
from app.schemas import JobPublic, JobSummary
from tests.factories import ONE_CPU, epoch_metrics, submit_job


def test_health_answers_ok(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "problems": []}


def test_submitting_a_job_queues_it_with_resolved_hyperparameters(client: TestClient) -> None:
    response = client.post(
        "/jobs", json={"name": "digits-baseline", "hyperparameters": {"dataset": "digits", "epochs": 3}}
    )
    assert response.status_code == 201
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["name"] == "digits-baseline"
    assert job["hyperparameters"]["epochs"] == 3
    assert job["hyperparameters"]["model"] == "small_cnn"
    assert job["hyperparameters"]["batch_size"] == 64
    assert (job["attempts"], job["current_epoch"], job["progress"]) == (0, 0, 0.0)
    assert (job["error"], job["metrics"], job["checkpoints"]) == (None, [], [])
    assert job["created_at"].endswith(("Z", "+00:00"))
    assert client.get(f"/jobs/{job['id']}").json()["hyperparameters"] == job["hyperparameters"]


def test_an_empty_body_submits_the_default_digits_job(client: TestClient) -> None:
    response = client.post("/jobs", json={})
    assert response.status_code == 201
    assert response.json()["hyperparameters"]["dataset"] == "digits"


def test_dry_run_resolves_without_queueing(client: TestClient) -> None:
    response = client.post("/jobs?dry_run=true", json={"hyperparameters": {"epochs": 2}})
    assert response.status_code == 200
    assert response.json()["hyperparameters"]["epochs"] == 2
    assert response.json()["hyperparameters"]["optimizer"] == "adam"
    assert client.get("/jobs").json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"hyperparameters": {"epochs": 0}}, ["body", "hyperparameters", "epochs"]),
        ({"hyperparameters": {"epochz": 1}}, ["body", "hyperparameters", "epochz"]),
        ({"hyperparameters": {"batch_size": "big"}}, ["body", "hyperparameters", "batch_size"]),
        ({"hyperparameters": {"epochs": 10**40}}, ["body", "hyperparameters", "epochs"]),
        ({"hyperparameters": {"lr_scheduler": "step"}}, ["body", "hyperparameters"]),
        ({"name": "x" * 1000}, ["body", "name"]),
        ({"name": "nul\x00byte"}, ["body", "name"]),
        ({"hyperparameters": {"epochs": True}}, ["body", "hyperparameters", "epochs"]),
        ({"hyperparameters": {"learning_rate": "1e-3"}}, ["body", "hyperparameters", "learning_rate"]),
        ({"owner": "me"}, ["body", "owner"]),
    ],
)
def test_invalid_bodies_get_422_naming_each_bad_field(
    client: TestClient, body: dict, field: list[str]
) -> None:
    response = client.post("/jobs", json=body)
    assert response.status_code == 422
    assert field in [error["loc"] for error in response.json()["detail"]]


def test_an_unknown_hyperparameter_names_the_closest_one_in_the_422(client: TestClient) -> None:
    response = client.post(
        "/jobs", json={"hyperparameters": {"learning_rat": 0.1, "batchsize": 8, "colour": "red"}}
    )
    assert response.status_code == 422
    errors = {error["loc"][-1]: error for error in response.json()["detail"]}
    assert errors["learning_rat"] == {
        "loc": ["body", "hyperparameters", "learning_rat"],
        "msg": "Extra inputs are not permitted; did you mean learning_rate?",
        "type": "extra_forbidden",
    }
    assert errors["batchsize"]["msg"].endswith("did you mean batch_size?")
    assert errors["colour"]["msg"] == "Extra inputs are not permitted"


def test_nan_in_a_body_gets_422_not_500(client: TestClient) -> None:
    response = client.post(
        "/jobs",
        content=b'{"hyperparameters": {"learning_rate": NaN}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "hyperparameters", "learning_rate"]


def test_malformed_json_gets_422(client: TestClient) -> None:
    response = client.post("/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"max_attempts": ' + b"9" * 5000 + b"}", "more than 4300 digits"),
        (b'{"name": "caf\xe9"}', "not valid utf-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nests"),
    ],
)
def test_json_that_cannot_be_decoded_gets_422_saying_why(client: TestClient, body: bytes, says: str) -> None:
    response = client.post("/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"]) == (["body"], "json_invalid")
    assert says in error["msg"]


def test_listing_is_newest_first_and_pages_with_a_cursor(client: TestClient) -> None:
    ids = [client.post("/jobs", json={"name": f"job-{i}"}).json()["id"] for i in range(5)]
    first = client.get("/jobs?limit=2").json()
    assert [job["id"] for job in first["items"]] == ids[::-1][:2]
    assert "metrics" not in first["items"][0]
    second = client.get(f"/jobs?limit=2&cursor={first['next_cursor']}").json()
    third = client.get(f"/jobs?limit=2&cursor={second['next_cursor']}").json()
    assert [job["id"] for job in second["items"] + third["items"]] == ids[::-1][2:]
    assert third["next_cursor"] is None


def test_listing_filters_by_status(client: TestClient, engine: Engine) -> None:
    submit_job(engine, "running")
    queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    submit_job(engine, "waiting")
    names = [job["name"] for job in client.get("/jobs?status=queued").json()["items"]]
    assert names == ["waiting"]
    both = client.get("/jobs?status=queued&status=running").json()["items"]
    assert len(both) == 2


@pytest.mark.parametrize("query", ["status=done", "limit=0", "limit=501", "cursor=%%%", "cursor=bm9wZQ"])
def test_bad_listing_parameters_get_422(client: TestClient, query: str) -> None:
    assert client.get(f"/jobs?{query}").status_code == 422


def test_unknown_jobs_are_404(client: TestClient) -> None:
    assert client.get("/jobs/nope").status_code == 404
    assert client.get("/jobs/nope/metrics").status_code == 404
    assert client.get("/jobs/nope/checkpoints/latest").status_code == 404


def test_metrics_can_be_polled_incrementally(client: TestClient, engine: Engine) -> None:
    job = submit_job(engine)
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    for epoch in (1, 2, 3):
        queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(epoch), progress=epoch / 10)
    rows = client.get(f"/jobs/{job.id}/metrics?after_epoch=1").json()
    assert [row["epoch"] for row in rows] == [2, 3]
    assert set(rows[0]) >= {
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "duration_seconds",
        "samples_per_second",
    }
    shown = client.get(f"/jobs/{job.id}").json()
    assert [row["epoch"] for row in shown["metrics"]] == [1, 2, 3]
    assert (shown["status"], shown["current_epoch"], shown["attempts"]) == ("running", 3, 1)


def test_the_fast_job_route_returns_exactly_the_public_model(client: TestClient, engine: Engine) -> None:
    job = submit_job(engine, "fast path")
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    checkpoint = queue.CheckpointFile(
        epoch=2, file_name="epoch-0002.pt", size_bytes=3, sha256="b" * 64, is_best=True
    )
    for epoch in (1, 2):
        queue.record_epoch(
            engine,
            lease=lease,
            metrics=epoch_metrics(epoch, val_accuracy=0.1 * epoch),
            progress=0.5 * epoch,
            checkpoint=checkpoint if epoch == 2 else None,
        )
    # With every result a job can carry, so that each column reaches the response as the model says.
    dataset = DatasetInfo(layout="digits", classes=["a", "b"], train_samples=4, val_samples=2, test_samples=0)
    assert queue.record_start(engine, lease=lease, device="cpu", precision="fp32", dataset=dataset)
    evaluated = EvaluationMetrics(
        epoch=2,
        loss=0.5,
        accuracy=0.5,
        per_class=[
            ClassMetrics(class_name=name, precision=0.5, recall=0.5, f1=0.5, support=1) for name in "ab"
        ],
        confusion_matrix=[[1, 0], [1, 0]],
    )
    export = ExportFile(
        name="model.onnx", format="onnx", file_name="attempt-1/model.onnx", size_bytes=9, sha256="c" * 64
    )
    results = RunResults(
        stop_reason=StopReason.completed, best_epoch=2, val_metrics=evaluated, exports=[export]
    )
    assert queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=results)
    with read_session(engine) as session:
        stored = session.get(Job, job.id)
        assert stored is not None
        rows = session.exec(select(EpochMetric).where(EpochMetric.job_id == job.id)).all()
        checkpoints = session.exec(select(Checkpoint).where(Checkpoint.job_id == job.id)).all()
        # disk_bytes from the rows: the checkpoint's 3 bytes and the export's 9.
        expected = JobPublic.from_rows(stored, list(rows), list(checkpoints), disk_bytes=12).model_dump(
            mode="json"
        )
    shown = client.get(f"/jobs/{job.id}").json()
    assert shown == expected
    assert shown["val_metrics"]["per_class"][1]["class"] == "b"
    assert shown["exports"][0]["url"] == f"/jobs/{job.id}/exports/model.onnx"
    assert (shown["stop_reason"], shown["best_epoch"], shown["test_metrics"]) == ("completed", 2, None)


def test_the_fast_job_list_returns_exactly_the_public_model_page_after_page(
    client: TestClient, engine: Engine
) -> None:
    for i in range(5):
        submit_job(engine, f"job {i}")
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    queue.fail(
        engine, lease=lease, reason=FailureReason.data_error, message="no such folder", runtime_seconds=1.0
    )
    with read_session(engine) as session:
        rows = session.exec(select(Job).order_by(col(Job.created_at).desc(), col(Job.id).desc())).all()
        expected = [JobSummary.from_row(job, disk_bytes=0).model_dump(mode="json") for job in rows]
    first = client.get("/jobs", params={"limit": 3}).json()
    second = client.get("/jobs", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert first["items"] + second["items"] == expected
    assert second["next_cursor"] is None
    assert any(item["error"] == {"reason": "data_error", "message": "no such folder"} for item in expected)
