"""A job's `resources` (devices and labels) as POST /jobs takes them and the job shows them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.resources import MAX_JOB_DEVICES, MAX_JOB_LABELS


def submit(client: TestClient, resources: Any, **hyperparameters: Any) -> Any:
    return client.post("/jobs", json={"hyperparameters": hyperparameters, "resources": resources})


def test_a_job_without_resources_asks_for_one_device_and_no_labels(client: TestClient) -> None:
    job = client.post("/jobs", json={}).json()
    assert job["resources"] == {"devices": 1, "labels": []}
    assert client.get(f"/jobs/{job['id']}").json()["resources"] == {"devices": 1, "labels": []}


def test_resources_come_back_from_every_read_with_labels_sorted_and_without_repeats(
    client: TestClient,
) -> None:
    created = submit(client, {"devices": 4, "labels": ["fast", "a100", "fast"]}, device="cuda")
    assert created.status_code == 201, created.text
    expected = {"devices": 4, "labels": ["a100", "fast"]}
    assert created.json()["resources"] == expected
    job_id = created.json()["id"]
    assert client.get(f"/jobs/{job_id}").json()["resources"] == expected
    assert client.get("/jobs").json()["items"][0]["resources"] == expected
    dry = client.post("/jobs?dry_run=true", json={"resources": {"labels": ["b", "a"]}})
    assert dry.json()["resources"] == {"devices": 1, "labels": ["a", "b"]}


@pytest.mark.parametrize(
    ("resources", "loc", "message"),
    [
        ({"devices": 0}, ["devices"], "greater than or equal to 1"),
        ({"devices": MAX_JOB_DEVICES + 1}, ["devices"], f"less than or equal to {MAX_JOB_DEVICES}"),
        ({"devices": "2"}, ["devices"], "must be a number, not a string"),
        ({"devices": True}, ["devices"], "must be a number, not a string or a boolean"),
        ({"devices": 1.5}, ["devices"], "integer"),
        ({"labels": ["A100"]}, ["labels"], "label 'A100' is not valid: a label is 1 to 63 characters of a-z"),
        ({"labels": ["-x"]}, ["labels"], "starting with a letter or a digit"),
        ({"labels": ["x" * 64]}, ["labels"], "1 to 63 characters"),
        (
            {"labels": [f"l{i}" for i in range(MAX_JOB_LABELS + 1)]},
            ["labels"],
            f"at most {MAX_JOB_LABELS} items",
        ),
        ({"labels": "a100"}, ["labels"], "valid list"),
        ({"labels": [7]}, ["labels", 0], "valid string"),
        ({"gpus": 2}, ["gpus"], "Extra inputs are not permitted"),
    ],
)
def test_bad_resources_get_422_saying_what_to_change(
    client: TestClient, resources: dict[str, Any], loc: list[Any], message: str
) -> None:
    response = submit(client, resources)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "resources", *loc]
    assert message in error["msg"]
    assert client.get("/jobs").json()["items"] == []


def test_an_idempotent_retry_replays_only_with_the_same_resources(client: TestClient) -> None:
    headers = {"Idempotency-Key": "resources-1"}
    body = {"resources": {"devices": 2}}
    first = client.post("/jobs", json=body, headers=headers)
    assert client.post("/jobs", json=body, headers=headers).json()["id"] == first.json()["id"]
    other = client.post("/jobs", json={"resources": {"devices": 3}}, headers=headers)
    assert other.status_code == 409
