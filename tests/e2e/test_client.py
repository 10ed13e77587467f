"""trainq.Client against a live API: what it returns, how it pages, and which exception says what."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from tests.e2e.conftest import Service, running_service
from tests.support.polling import wait_for
from tests.support.processes import free_port
from trainq import (
    CheckpointEvent,
    Client,
    Conflict,
    EndEvent,
    EpochEvent,
    InvalidRequest,
    LogEvent,
    NotFound,
    ProgressEvent,
    ServerUnreachable,
    StatusEvent,
    TrainqError,
    Unauthorized,
    WaitTimedOut,
)

KEY = "client-test-key-0123456789abcdef"
METRICS_KEY = "client-test-metrics-0123456789ab"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Keys required, and no worker: jobs stay queued."""
    state_dir = tmp_path_factory.mktemp("keyed")
    with running_service(
        state_dir, api_key=KEY, TRAINQ_API_KEYS=f"alice:{KEY},metrics:{METRICS_KEY}"
    ) as running:
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


def test_iter_jobs_filters_and_sorts_across_pages(client: Client) -> None:
    made = {
        name: client.submit({"epochs": 1, "model": model}, name=name, tags=["client-find", name])["id"]
        for name, model in (("b-find", "mlp"), ("a-find", "small_cnn"), ("c-find", "small_cnn"))
    }
    by_name = client.iter_jobs(tag="client-find", sort="name", page_size=1)
    assert [job["name"] for job in by_name] == ["a-find", "b-find", "c-find"]
    assert [job["id"] for job in client.iter_jobs(tag=["client-find", "c-find"])] == [made["c-find"]]
    assert [job["id"] for job in client.iter_jobs(tag="client-find", model="mlp")] == [made["b-find"]]
    assert [job["id"] for job in client.iter_jobs(name="B-FIND")] == [made["b-find"]]
    created = datetime.fromisoformat(client.get_job(made["a-find"])["created_at"])
    later = list(client.iter_jobs(tag="client-find", created_after=created + timedelta(days=1)))
    assert later == []
    earlier = client.iter_jobs(tag="client-find", created_before=created.isoformat())
    assert [job["id"] for job in earlier] == [made["b-find"]]  # before a-find: exclusive


def test_update_job_changes_only_the_fields_given(client: Client) -> None:
    job = client.submit({"epochs": 1}, name="kept", tags=["one"], priority=2)
    noted = client.update_job(job["id"], notes="a note")
    assert (noted["name"], noted["tags"], noted["notes"], noted["priority"]) == ("kept", ["one"], "a note", 2)
    cleared = client.update_job(job["id"][:8], tags=[], priority=-1)
    assert (cleared["tags"], cleared["priority"], cleared["notes"]) == ([], -1, "a note")


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


def test_wait_returns_a_job_once_it_has_ended(client: Client) -> None:
    job_id = client.submit({"epochs": 1})["id"]
    client.cancel(job_id)
    assert client.wait(job_id, timeout=5)["status"] == "cancelled"


def test_wait_on_a_job_that_never_ends_times_out_with_a_clear_error(client: Client) -> None:
    # No worker runs beside `keyed`: the job stays queued.
    job_id = client.submit({"epochs": 1})["id"]
    with pytest.raises(WaitTimedOut, match=f"job {job_id} is still queued after 0.3s") as timed_out:
        client.wait(job_id, timeout=0.3, poll_interval_s=0.1)
    assert isinstance(timed_out.value, TimeoutError)
    assert isinstance(timed_out.value, TrainqError)
    assert client.get_job(job_id)["status"] == "queued"


def _not_modified_answers(service: Service) -> float:
    """How many 304s the server has sent for GET /jobs/{job_id}, from its Prometheus series."""
    series = 'trainq_http_requests_total{method="GET",route="/jobs/{job_id}",status="304"} '
    scraped = service.http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
    lines = scraped.raise_for_status().text.splitlines()
    return sum(float(line.removeprefix(series)) for line in lines if line.startswith(series))


def test_wait_polls_with_if_none_match_and_returns_the_job_once_it_changes(
    keyed: Service, client: Client
) -> None:
    job_id = client.submit({"epochs": 1})["id"]
    before = _not_modified_answers(keyed)

    def cancel_once_a_poll_was_not_modified() -> None:
        wait_for(lambda: _not_modified_answers(keyed) > before, timeout_s=30, what="a 304 to wait()")
        keyed.http.post(f"/jobs/{job_id}/cancel").raise_for_status()

    canceller = threading.Thread(target=cancel_once_a_poll_was_not_modified)
    canceller.start()
    try:
        assert client.wait(job_id, timeout=60, poll_interval_s=0.05)["status"] == "cancelled"
    finally:
        canceller.join()


def test_watch_an_unknown_job_is_not_found(client: Client) -> None:
    with pytest.raises(NotFound, match="not found"):
        next(client.watch("0123456789abcdef"))


def test_watch_yields_a_real_jobs_typed_events_in_order_and_wait_returns_it(live: Service) -> None:
    epochs = 2
    with Client(str(live.http.base_url)) as client:
        job_id = client.submit({"dataset": "digits", "epochs": epochs}, name="watched")["id"]
        events = list(client.watch(job_id))
        finished = client.wait(job_id, timeout=30)
    assert finished["status"] == "succeeded"
    assert isinstance(events[0], StatusEvent) and events[0].status == "queued"
    assert events[-1] == EndEvent(status="succeeded")
    durable = [event for event in events if not isinstance(event, ProgressEvent | LogEvent)]
    statuses = [event.status for event in durable if isinstance(event, StatusEvent)]
    assert statuses == ["queued", "running", "succeeded"]
    epoch_events = [event for event in durable if isinstance(event, EpochEvent)]
    assert [event.epoch for event in epoch_events] == list(range(1, epochs + 1))
    assert [event.val_accuracy for event in epoch_events] == [
        row["val_accuracy"] for row in finished["metrics"]
    ]
    assert any(isinstance(event, CheckpointEvent) and event.epoch == epochs for event in durable)
    # In the order they happened: running, then the epochs, then success, then the end.
    position = {
        (type(event).__name__, getattr(event, "status", None)): index for index, event in enumerate(durable)
    }
    first_epoch = durable.index(epoch_events[0])
    assert position[("StatusEvent", "running")] < first_epoch
    assert position[("StatusEvent", "succeeded")] == len(durable) - 2
    ids = [event.event_id for event in durable if not isinstance(event, EndEvent)]
    assert all(ids) and len(set(ids)) == len(ids)

    # Resuming after an event replays only what came after it.
    with Client(str(live.http.base_url)) as client:
        resumed = list(client.watch(job_id, last_event_id=epoch_events[-1].event_id))
    assert not any(isinstance(event, EpochEvent) for event in resumed)
    assert resumed[-1] == EndEvent(status="succeeded")
