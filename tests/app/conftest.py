"""The queue and API tests run on both databases: SQLite (a file per test) and PostgreSQL
(one fresh database for the session, emptied before each test and dropped at the end)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel

from app.db import make_engine
from app.migrations import upgrade
from tests.support.databases import fresh_database


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    with fresh_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with nothing in it, for migration tests (database_url's is upgraded)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trainq.db'}"
        return
    with fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'trainq.db'}"
    url: str = request.getfixturevalue("postgres_database")
    engine = make_engine(url)
    tables = ", ".join(table.name for table in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url
