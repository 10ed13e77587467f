"""trainq.Client against a live API: what it returns, how it pages, and which exception says what."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Service, running_service
from tests.support.processes import free_port
from trainq import (
    Client,
    Conflict,
    InvalidRequest,
    NotFound,
    ServerUnreachable,
    TrainqError,
    Unauthorized,
)

KEY = "client-test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Keys required, and no worker: jobs stay queued."""
    state_dir = tmp_path_factory.mktemp("keyed")
    with running_service(state_dir, api_key=KEY, TRAINQ_API_KEYS=f"alice:{KEY}") as running:
        yield running


@pytest.fixture
def client(keyed: Service) -> Iterator[Client]:
    with Client(str(keyed.http.base_url), KEY) as client:
        yield client


def test_url_and_key_come_from_the_environment(keyed: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINQ_URL", str(keyed.http.base_url))
    monkeypatch.setenv("TRAINQ_API_KEY", KEY)
    with Client() as client:
        assert client.list_jobs(limit=1)["items"] is not None
    monkeypatch.delenv("TRAINQ_URL")
    assert Client().url == "http://127.0.0.1:8000"


def test_submit_queues_once_per_idempotency_key_and_dry_run_queues_nothing(client: Client) -> None:
    job = client.submit({"epochs": 1}, name="once", max_attempts=2, idempotency_key="client-1")
    assert (job["status"], job["name"], job["max_attempts"]) == ("queued", "once", 2)
    again = client.submit({"epochs": 1}, name="once", max_attempts=2, idempotency_key="client-1")
    assert again["id"] == job["id"]
    resolved = client.submit({"model": "mlp"}, max_runtime_seconds=30, dry_run=True)
    assert "id" not in resolved
    assert (resolved["hyperparameters"]["model"], resolved["max_runtime_seconds"]) == ("mlp", 30)
    assert client.get_job(job["id"])["hyperparameters"]["epochs"] == 1


def test_iter_jobs_walks_every_page_newest_first(client: Client) -> None:
    submitted = [client.submit({"epochs": 1}, name=f"page-{i}")["id"] for i in range(5)]
    client.cancel(submitted[0])
    everything = client.list_jobs(limit=500)
    assert everything["next_cursor"] is None
    assert [job["id"] for job in client.iter_jobs(page_size=2)] == [job["id"] for job in everything["items"]]
    assert [job["id"] for job in client.iter_jobs(status="cancelled")] == [submitted[0]]
    first_page = client.list_jobs(status=["queued", "cancelled"], limit=2)
    assert len(first_page["items"]) == 2 and first_page["next_cursor"]


def test_each_error_status_has_its_own_exception(client: Client, keyed: Service) -> None:
    with pytest.raises(InvalidRequest) as invalid:
        client.submit({"epochs": 0, "model": "vgg"})
    assert sorted((error.loc, error.field) for error in invalid.value.errors) == [
        (("body", "hyperparameters", "epochs"), "hyperparameters.epochs"),
        (("body", "hyperparameters", "model"), "hyperparameters.model"),
    ]
    with pytest.raises(NotFound, match="not found"):
        client.get_job("0123456789abcdef")
    job_id = client.submit({"epochs": 1})["id"]
    client.cancel(job_id)
    with pytest.raises(Conflict, match="already ended") as conflict:
        client.cancel(job_id)
    assert conflict.value.status_code == 409
    with (
        Client(str(keyed.http.base_url), api_key="") as anonymous,
        pytest.raises(Unauthorized) as unauthorized,
    ):
        anonymous.list_jobs()
    assert "TRAINQ_API_KEY" in str(unauthorized.value)
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url) as nowhere, pytest.raises(ServerUnreachable, match=f"{url} is not reachable"):
        nowhere.get_job("x")
    assert all(issubclass(kind, TrainqError) for kind in (InvalidRequest, NotFound, Conflict, Unauthorized))
