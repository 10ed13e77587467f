"""PostgreSQL engines: a bounded pool for each kind of process, sessions in UTC, and connections
that the server closed replaced before a session gets one."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.db import API_POOL, WORKER_POOL, make_engine
from tests.support.databases import fresh_database


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def admin(url: str) -> psycopg.Connection:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(conninfo, autocommit=True)


def test_a_worker_keeps_a_small_pool_and_an_api_process_a_bounded_one(postgres_url: str) -> None:
    for pool, expected in ((WORKER_POOL, (2, 1)), (API_POOL, (10, 10))):
        engine = make_engine(postgres_url, pool=pool)
        assert (engine.pool.size(), engine.pool._max_overflow) == expected  # type: ignore[attr-defined]
        engine.dispose()
    default = make_engine(postgres_url)
    assert default.pool.size() == API_POOL.size
    default.dispose()


def test_sessions_run_in_utc_whatever_the_database_default(postgres_url: str) -> None:
    database = make_url(postgres_url).database
    with admin(postgres_url) as connection:
        connection.execute(f"ALTER DATABASE \"{database}\" SET timezone = 'America/New_York'")
    engine = make_engine(postgres_url)
    with engine.connect() as connection:
        assert connection.execute(text("SHOW TimeZone")).scalar_one() == "UTC"
    engine.dispose()


def test_a_connection_the_server_closed_is_replaced_before_a_session_gets_it(postgres_url: str) -> None:
    engine = make_engine(postgres_url, pool=WORKER_POOL)
    with engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with admin(postgres_url) as connection:
        connection.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    engine.dispose()
