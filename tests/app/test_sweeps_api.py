"""POST /sweeps, GET /sweeps[/{id}] and POST /sweeps/{id}/cancel, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import select

from app import queue
from app.contract import FailureReason
from app.db import read_session
from app.models import Job, JobStatus, Sweep
from app.queue.ordering import PRIORITY_AGING_S
from tests.factories import ONE_CPU, epoch_metrics
from tests.support.keys import ADMIN, ALICE, BOB, auth

GRID = {
    "name": "lr-search",
    "method": "grid",
    "base": {"hyperparameters": {"dataset": "digits", "epochs": 2}, "max_attempts": 2},
    "parameters": {"learning_rate": {"values": [0.1, 0.01, 0.001]}, "batch_size": {"values": [16, 32]}},
}


def post_sweep(client: TestClient, body: dict[str, Any], key: str = ALICE) -> dict[str, Any]:
    response = client.post("/sweeps", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/sweeps/{response.json()['id']}"
    created: dict[str, Any] = response.json()
    return created


def count_rows(engine: Engine) -> tuple[int, int]:
    with read_session(engine) as session:
        jobs = session.exec(select(func.count()).select_from(Job)).one()
        sweeps = session.exec(select(func.count()).select_from(Sweep)).one()
    return jobs, sweeps


def test_a_grid_sweep_queues_one_job_per_combination_with_the_sweep_id(
    keyed: TestClient, engine: Engine
) -> None:
    sweep = post_sweep(keyed, GRID)
    assert sweep["method"] == "grid"
    assert sweep["owner"] == "alice"
    assert sweep["counts"]["queued"] == 6
    assert len(sweep["jobs"]) == 6
    assert sweep["space"]["parameters"]["learning_rate"] == {"values": [0.1, 0.01, 0.001]}
    assert sweep["varied"] == ["learning_rate", "batch_size"]
    with read_session(engine) as session:
        jobs = session.exec(select(Job).where(Job.sweep_id == sweep["id"])).all()
    assert len(jobs) == 6
    assert {(j.hyperparameters["learning_rate"], j.hyperparameters["batch_size"]) for j in jobs} == {
        (lr, bs) for lr in (0.1, 0.01, 0.001) for bs in (16, 32)
    }
    assert {j.hyperparameters["epochs"] for j in jobs} == {2}
    assert {j.max_attempts for j in jobs} == {2}
    assert {j.owner for j in jobs} == {"alice"}
    assert "lr-search #3 lr=0.01 bs=16" in {j.name for j in jobs}
    # Ordinary jobs: GET /jobs/{id} shows each.
    assert keyed.get(f"/jobs/{jobs[0].id}", headers=auth(ALICE)).json()["status"] == "queued"


def test_a_sweeps_jobs_are_queued_with_the_bases_priority_resources_and_tags(
    keyed: TestClient, engine: Engine
) -> None:
    base = {**GRID["base"], "priority": 7, "resources": {"devices": 1, "labels": ["a100"]}, "tags": ["lr"]}
    sweep = post_sweep(keyed, {**GRID, "base": base})
    with read_session(engine) as session:
        jobs = session.exec(select(Job).where(Job.sweep_id == sweep["id"])).all()
    assert {(job.priority, tuple(job.labels), tuple(job.tags)) for job in jobs} == {(7, ("a100",), ("lr",))}
    tagged = keyed.get("/jobs", params={"tag": "lr"}, headers=auth(ALICE)).json()["items"]
    assert len(tagged) == len(jobs) == 6
    # Ordered like any job of priority 7 (app.queue.ordering).
    assert {
        (job.created_at.replace(tzinfo=None) - job.queue_order_at.replace(tzinfo=None)).total_seconds()
        for job in jobs
    } == {7 * PRIORITY_AGING_S}


def test_a_random_sweep_stores_its_seed_and_draws_the_same_jobs_for_it(keyed: TestClient) -> None:
    body = {
        "name": "wd",
        "method": "random",
        "parameters": {"weight_decay": {"min": 1e-5, "max": 1e-2, "distribution": "log_uniform"}},
        "trials": 5,
    }
    first = post_sweep(keyed, body)
    seed = first["space"]["seed"]
    assert isinstance(seed, int)
    again = post_sweep(keyed, {**body, "seed": seed})

    def drawn(sweep: dict[str, Any]) -> list[float]:
        return sorted(job["parameters"]["weight_decay"] for job in sweep["jobs"])

    assert len(drawn(first)) == 5
    assert drawn(first) == drawn(again)
    assert all(1e-5 <= wd <= 1e-2 for wd in drawn(first))


def test_an_invalid_combination_is_a_422_naming_it_and_queues_nothing(
    keyed: TestClient, engine: Engine
) -> None:
    body = {**GRID, "parameters": {**GRID["parameters"], "learning_rate": {"values": [0.1, 50.0]}}}
    response = keyed.post("/sweeps", json=body, headers=auth(ALICE))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["combination"] == {"learning_rate": 50.0, "batch_size": 16}
    assert "combination #3 (lr=50 bs=16)" in error["msg"]
    assert "less than or equal to 10" in error["msg"]
    assert error["errors"][0]["loc"] == ["hyperparameters", "learning_rate"]
    assert count_rows(engine) == (0, 0)


def test_a_sweep_of_more_than_the_cap_is_a_422(keyed: TestClient, engine: Engine) -> None:
    body = {
        **GRID,
        "parameters": {"epochs": {"values": list(range(1, 41))}, "seed": {"values": list(range(30))}},
    }
    response = keyed.post("/sweeps", json=body, headers=auth(ALICE))
    assert response.status_code == 422
    assert "the grid has 1200 combinations; a sweep may have at most 1000" in response.text
    random = {"method": "random", "parameters": {"seed": {"min": 0, "max": 9}}, "trials": 1001}
    assert keyed.post("/sweeps", json=random, headers=auth(ALICE)).status_code == 422
    assert count_rows(engine) == (0, 0)


def test_a_sweep_ranks_its_jobs_by_best_val_accuracy_with_unfinished_ones_last(
    keyed: TestClient, engine: Engine
) -> None:
    # Fixed ones (a single value) do not vary: jobs show only the learning rate.
    parameters = {
        "learning_rate": {"values": [0.1, 0.01, 0.001, 0.0001]},
        "optimizer": {"value": "sgd"},
        "batch_size": {"values": [32]},
    }
    sweep = post_sweep(keyed, {**GRID, "parameters": parameters})
    assert sweep["varied"] == ["learning_rate"]
    accuracies = iter([0.5, 0.9, 0.7])  # the first three claimed (in the sweep's order) report these
    for _ in range(3):
        lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
        assert lease is not None
        queue.record_epoch(
            engine, lease=lease, metrics=epoch_metrics(1, val_accuracy=next(accuracies)), progress=0.5
        )
    shown = keyed.get(f"/sweeps/{sweep['id']}", headers=auth(ALICE)).json()
    ranked = [(job["parameters"], job["best_val_accuracy"], job["status"]) for job in shown["jobs"]]
    assert ranked == [
        ({"learning_rate": 0.01}, 0.9, "running"),
        ({"learning_rate": 0.001}, 0.7, "running"),
        ({"learning_rate": 0.1}, 0.5, "running"),
        ({"learning_rate": 0.0001}, None, "queued"),
    ]
    assert shown["best_val_accuracy"] == 0.9
    assert (shown["counts"]["running"], shown["counts"]["queued"], shown["counts"]["succeeded"]) == (3, 1, 0)


def test_cancelling_a_sweep_cancels_its_queued_and_running_jobs_only(
    keyed: TestClient, engine: Engine
) -> None:
    sweep = post_sweep(keyed, GRID)
    other = keyed.post("/jobs", json={}, headers=auth(ALICE)).json()  # not in the sweep: left alone
    ended = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    running = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert ended is not None and running is not None
    assert queue.fail(engine, lease=ended, reason=FailureReason.data_error, message="x", runtime_seconds=1)
    response = keyed.post(f"/sweeps/{sweep['id']}/cancel", headers=auth(ALICE))
    assert response.status_code == 200
    counts = response.json()["counts"]
    assert (counts["cancelled"], counts["failed"], counts["queued"], counts["running"]) == (5, 1, 0, 0)
    assert not queue.holds(engine, lease=running)  # its worker stops
    assert keyed.get(f"/jobs/{other['id']}", headers=auth(ALICE)).json()["status"] == "queued"
    # Again: nothing left to cancel, not an error.
    assert keyed.post(f"/sweeps/{sweep['id']}/cancel", headers=auth(ALICE)).json()["counts"] == counts


def test_another_owners_sweep_is_404_and_absent_from_the_list(keyed: TestClient) -> None:
    sweep = post_sweep(keyed, GRID, key=ALICE)
    assert keyed.get(f"/sweeps/{sweep['id']}", headers=auth(BOB)).status_code == 404
    assert keyed.post(f"/sweeps/{sweep['id']}/cancel", headers=auth(BOB)).status_code == 404
    assert keyed.get("/sweeps", headers=auth(BOB)).json()["items"] == []
    assert keyed.get(f"/sweeps/{sweep['id']}", headers=auth(ADMIN)).status_code == 200
    assert keyed.get("/sweeps/nope", headers=auth(ALICE)).status_code == 404
    # Bob's cancel changed nothing.
    assert keyed.get(f"/sweeps/{sweep['id']}", headers=auth(ALICE)).json()["counts"]["queued"] == 6


def test_sweeps_are_listed_newest_first_a_page_at_a_time(keyed: TestClient) -> None:
    ids = [post_sweep(keyed, {**GRID, "name": f"s{i}"})["id"] for i in range(3)]
    post_sweep(keyed, GRID, key=BOB)
    first = keyed.get("/sweeps?limit=2", headers=auth(ALICE)).json()
    assert [s["id"] for s in first["items"]] == ids[::-1][:2]
    assert first["items"][0]["counts"]["queued"] == 6
    assert "jobs" not in first["items"][0]
    rest = keyed.get(f"/sweeps?limit=2&cursor={first['next_cursor']}", headers=auth(ALICE)).json()
    assert [s["id"] for s in rest["items"]] == ids[:1]
    assert rest["next_cursor"] is None
    assert len(keyed.get("/sweeps", headers=auth(ADMIN)).json()["items"]) == 4
    assert keyed.get("/sweeps?cursor=%%%", headers=auth(ALICE)).status_code == 422


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"method": "grid", "parameters": {"lr": {"values": [1]}}}, "lr are not hyperparameters"),
        ({"method": "random", "parameters": {"learning_rate": {"values": [0.1]}}}, "needs trials"),
        (
            {"method": "grid", "parameters": {"learning_rate": {"min": 0.1, "max": 1}}},
            "takes values, not ranges",
        ),
        ({"method": "bayes", "parameters": {"learning_rate": {"values": [0.1]}}}, "'grid' or 'random'"),
    ],
)
def test_a_bad_sweep_body_is_a_422_saying_what_to_change(
    keyed: TestClient, engine: Engine, body: dict[str, Any], message: str
) -> None:
    response = keyed.post("/sweeps", json=body, headers=auth(ALICE))
    assert response.status_code == 422
    assert message in response.text
    assert count_rows(engine) == (0, 0)


def test_a_sweeps_jobs_are_claimed_in_the_sweeps_order(keyed: TestClient, engine: Engine) -> None:
    sweep = post_sweep(keyed, GRID)
    claimed = []
    while (lease := queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)) is not None:
        claimed.append((lease.hyperparameters["learning_rate"], lease.hyperparameters["batch_size"]))
    assert claimed == [(lr, bs) for lr in (0.1, 0.01, 0.001) for bs in (16, 32)]
    assert {
        job["status"] for job in keyed.get(f"/sweeps/{sweep['id']}", headers=auth(ALICE)).json()["jobs"]
    } == {JobStatus.running.value}
