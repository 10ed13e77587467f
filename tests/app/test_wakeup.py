"""An idle worker's wait: woken by NOTIFY on PostgreSQL, ended by its stop event on both
databases, and polling on when its LISTEN connection dies."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text

from app import queue
from app.contract import FailureReason
from app.queue import wakeup
from tests.factories import COMPLETED, ONE_CPU, epoch_metrics, submit_job
from tests.support.polling import wait_for

LEASE_S = 60.0
NEVER_S = 3600.0  # a poll interval no test waits out: a wait that returns True was notified
NOTIFIED_WITHIN_S = 30.0  # a deadline: a notified wait returns as soon as the notification arrives

postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def stop() -> threading.Event:
    return threading.Event()


@pytest.fixture
def waiter(engine: Engine, stop: threading.Event) -> Iterator[wakeup.Waiter]:
    waiter = wakeup.waiter_for(engine, stop=stop, poll_interval_s=NEVER_S)
    yield waiter
    waiter.close()


@pytest.fixture
def listener(waiter: wakeup.Waiter) -> wakeup.Listener:
    assert isinstance(waiter, wakeup.Listener) and waiter.listening
    return waiter


def test_setting_the_stop_event_ends_a_wait_at_once(waiter: wakeup.Waiter, stop: threading.Event) -> None:
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(waiter.wait(NEVER_S)), daemon=True)
    thread.start()
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert result == [False]


@postgres_only
def test_a_submit_wakes_a_listening_worker_long_before_its_poll_interval(
    engine: Engine, listener: wakeup.Listener
) -> None:
    assert listener.poll_interval_s == NEVER_S  # a notification, not a poll, must end the wait
    submit_job(engine)
    assert listener.wait(NOTIFIED_WITHIN_S)
    assert queue.has_queued(engine, capabilities=ONE_CPU)


@postgres_only
def test_only_writes_that_queue_a_job_notify(engine: Engine, database_url: str) -> None:
    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as listening:
        listening.execute(f"LISTEN {wakeup.CHANNEL}")
        job = submit_job(engine).id  # notifies
        lease = queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU)
        assert lease is not None
        assert queue.record_start(engine, lease=lease, device="cpu", precision="fp32")
        assert queue.heartbeat(engine, lease=lease, lease_seconds=LEASE_S, runtime_seconds=1.0)
        assert queue.record_progress(engine, lease=lease, epoch=1, progress=0.1)
        assert queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1), progress=0.5) == []
        assert queue.release(engine, lease=lease, resume_file=None, runtime_seconds=1.0)  # notifies
        assert queue.claim(engine, worker_id="lost", lease_seconds=-1.0, capabilities=ONE_CPU) is not None
        assert queue.requeue_expired(engine) == 1  # notifies
        lease = queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU)
        assert lease is not None
        assert queue.fail(
            engine, lease=lease, reason=FailureReason.out_of_memory, message="m", runtime_seconds=1.0
        )  # notifies
        lease = queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU)
        assert lease is not None
        assert queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=COMPLETED)
        last = submit_job(engine).id  # notifies; delivered after all of the above (commit order)
        heard = []
        for notification in listening.notifies(timeout=30):
            heard.append(notification.payload)
            if notification.payload == last:
                break
    assert heard == [job, job, job, job, last]


def backends(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": wakeup.APPLICATION_NAME},
            ).scalars()
        )


@postgres_only
def test_a_worker_whose_listen_connection_dies_still_picks_up_jobs_and_listens_again(
    engine: Engine, listener: wakeup.Listener
) -> None:
    (pid,) = backends(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    job = submit_job(engine)  # notified to nobody
    wait_for(
        lambda: not listener.wait(0.1) and not listener.listening, timeout_s=30, what="the loss to be seen"
    )
    assert listener.poll_interval_s == NEVER_S  # polling goes on, at the interval for no LISTEN
    assert queue.has_queued(engine, capabilities=ONE_CPU)
    lease = queue.claim(engine, worker_id="w", lease_seconds=LEASE_S, capabilities=ONE_CPU)
    assert lease is not None and lease.job_id == job.id
    assert not listener.wait(0.1)  # this wait opens a new LISTEN connection
    assert listener.listening
    submit_job(engine)
    assert listener.wait(NOTIFIED_WITHIN_S)
