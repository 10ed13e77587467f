"""The databases tests run on: fresh PostgreSQL databases, each dropped afterwards, and SQLite.

The server is TRAINQ_TEST_POSTGRES_URL (default: this machine's, trust auth, database `test`,
which is only used to create and drop the test's own databases). Without a server, tests that
need one are skipped, unless TRAINQ_TEST_POSTGRES_REQUIRED=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy.engine import make_url

DEFAULT_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# For tests of SQLite itself (its file, pragmas and locks), where tests/app runs each test on both
# databases: on a test, or as a module's pytestmark.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def server_url() -> str:
    return os.environ.get("TRAINQ_TEST_POSTGRES_URL", DEFAULT_SERVER_URL)


def _admin_conninfo() -> str:
    url = make_url(server_url())
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def require_server() -> None:
    """Skip the calling test when no PostgreSQL answers (fail instead where it is required)."""
    try:
        with psycopg.connect(_admin_conninfo(), connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL at {make_url(server_url()).render_as_string()} is not reachable: {exc}"
        if os.environ.get("TRAINQ_TEST_POSTGRES_REQUIRED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database; yields its SQLAlchemy URL and drops it (and its connections) on exit."""
    require_server()
    name = f"trainq_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
