"""init_from is checked at submit: the source job must be the caller's and list the checkpoint asked for."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app import queue
from app.contract import CheckpointFile
from tests.factories import ONE_CPU, list_checkpoint
from tests.support.keys import ADMIN, ALICE, BOB, auth

UNKNOWN_JOB = "0" * 32


@pytest.fixture
def source(keyed: TestClient, engine: Engine) -> str:
    """Alice's job that listed epoch 1 (its best) and epoch 2."""
    response = keyed.post("/jobs", json={"hyperparameters": {"epochs": 2}}, headers=auth(ALICE))
    assert response.status_code == 201, response.text
    lease = queue.claim(engine, worker_id="w1", lease_seconds=30, capabilities=ONE_CPU)
    assert lease is not None
    for epoch, is_best in ((1, True), (2, False)):
        checkpoint = CheckpointFile(
            epoch=epoch,
            file_name=f"attempt-1/epoch-000{epoch}.pt",
            size_bytes=1,
            sha256="0" * 64,
            is_best=is_best,
        )
        assert list_checkpoint(engine, lease=lease, checkpoint=checkpoint) is not None
    return lease.job_id


def submit_from(client: TestClient, key: str, init_from: dict[str, Any], dry_run: bool = False) -> Any:
    body = {"hyperparameters": {"init_from": init_from, "freeze_backbone": True}}
    return client.post("/jobs", json=body, headers=auth(key), params={"dry_run": "true"} if dry_run else None)


def problem(response: Any) -> str:
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", "hyperparameters", "init_from"]
    return str(detail["msg"])


@pytest.mark.parametrize("checkpoint", ["best", "latest", 1, 2])
def test_a_job_may_start_from_any_listed_checkpoint_of_its_owners_job(
    keyed: TestClient, source: str, checkpoint: str | int
) -> None:
    response = submit_from(keyed, ALICE, {"job": source, "checkpoint": checkpoint})
    assert response.status_code == 201, response.text
    assert response.json()["hyperparameters"]["init_from"] == {"job": source, "checkpoint": checkpoint}


def test_an_admin_may_start_from_anyones_job(keyed: TestClient, source: str) -> None:
    assert submit_from(keyed, ADMIN, {"job": source}).status_code == 201


def test_another_owners_job_is_refused_exactly_like_an_unknown_job(keyed: TestClient, source: str) -> None:
    others = problem(submit_from(keyed, BOB, {"job": source}))
    unknown = problem(submit_from(keyed, BOB, {"job": UNKNOWN_JOB}))
    assert others == unknown.replace(UNKNOWN_JOB, source)
    assert "give the id of one of your jobs" in others


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_checkpoint_the_source_does_not_list_is_refused_with_the_ones_it_does(
    keyed: TestClient, source: str, dry_run: bool
) -> None:
    message = problem(submit_from(keyed, ALICE, {"job": source, "checkpoint": 3}, dry_run=dry_run))
    assert "has no checkpoint 3" in message
    assert "epochs 1, 2" in message


def test_a_source_without_checkpoints_yet_is_refused(keyed: TestClient, engine: Engine) -> None:
    queued = keyed.post("/jobs", json={}, headers=auth(ALICE)).json()["id"]
    message = problem(submit_from(keyed, ALICE, {"job": queued}))
    assert f"job {queued} (queued) has no checkpoint 'best': it has none yet" in message
