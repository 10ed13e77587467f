"""GET /health asks the database, at most once per DATABASE_CHECK_INTERVAL_S."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from app.routes import health

# Nothing listens on port 1: connecting fails at once.
UNREACHABLE = "postgresql+psycopg://trainq@127.0.0.1:1/trainq?connect_timeout=2"


@contextmanager
def _unreachable_database(client: TestClient) -> Iterator[None]:
    state = client.app.state  # type: ignore[attr-defined]
    working, state.engine = state.engine, create_engine(UNREACHABLE)
    try:
        yield
    finally:
        state.engine.dispose()
        state.engine = working


def test_health_fails_when_the_database_cannot_be_reached(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "DATABASE_CHECK_INTERVAL_S", 0.0)
    assert client.get("/health").json()["status"] == "ok"
    # The server's 500 is the exception itself in the test client.
    with _unreachable_database(client), pytest.raises(OperationalError):
        client.get("/health")


def test_within_the_interval_health_answers_from_the_last_check(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "DATABASE_CHECK_INTERVAL_S", 3600.0)
    assert client.get("/health").status_code == 200
    with _unreachable_database(client):
        assert client.get("/health").json() == {"status": "ok", "problems": []}


def _held_reach(monkeypatch: pytest.MonkeyPatch, *, fails: bool) -> tuple[threading.Event, list[object]]:
    """Stand in for the database check: each question is recorded, then held until the returned
    event is set, then answered (an OperationalError when `fails`)."""
    release = threading.Event()
    asked: list[object] = []

    def reach(engine: object) -> None:
        asked.append(engine)
        assert release.wait(timeout=60)
        if fails:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("port 1"))

    monkeypatch.setattr(health, "_reach_database", reach)
    return release, asked


def test_probes_that_come_while_the_database_is_asked_wait_for_that_one_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release, asked = _held_reach(monkeypatch, fails=False)
    check = health.DatabaseCheck()
    engine = object()

    async def five_at_once() -> None:
        probes = [asyncio.ensure_future(check.ensure_reachable(engine)) for _ in range(5)]  # type: ignore[arg-type]
        await asyncio.sleep(0)  # each has asked, and waits for the first one's answer
        release.set()
        await asyncio.gather(*probes)
        # Answered within the interval: no new question.
        await check.ensure_reachable(engine)  # type: ignore[arg-type]

    asyncio.run(five_at_once())
    assert asked == [engine]


def test_an_unreachable_database_fails_every_waiting_probe_and_the_next_one_asks_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release, asked = _held_reach(monkeypatch, fails=True)
    check = health.DatabaseCheck()

    async def probe_twice() -> list[BaseException | None]:
        probes = [asyncio.ensure_future(check.ensure_reachable(object())) for _ in range(3)]  # type: ignore[arg-type]
        await asyncio.sleep(0)
        release.set()
        outcomes = await asyncio.gather(*probes, return_exceptions=True)
        with pytest.raises(OperationalError):
            await check.ensure_reachable(object())  # type: ignore[arg-type]
        return outcomes

    outcomes = asyncio.run(probe_twice())
    assert [type(outcome) for outcome in outcomes] == [OperationalError] * 3
    assert len(asked) == 2
