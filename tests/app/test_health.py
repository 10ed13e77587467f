"""GET /health asks the database, at most once per DATABASE_CHECK_INTERVAL_S."""

from __future__ import annotations

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
