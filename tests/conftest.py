from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from app.db import make_engine
from app.main import create_app
from app.migrations import upgrade
from app.settings import Settings
from tests.support.keys import KEYED_OWNERS


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite here; tests/app runs each test on PostgreSQL too (tests/app/conftest.py)."""
    return f"sqlite:///{tmp_path / 'trainq.db'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        artifacts_dir=tmp_path / "artifacts",
        data_dir=tmp_path / "data",
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def keyed(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """`client` with API keys on: alice, bob and admin (tests/support/keys.py)."""
    keyed_settings = settings.model_copy(update={"api_keys": SecretStr(KEYED_OWNERS)})
    with TestClient(create_app(keyed_settings)) as client:
        yield client
