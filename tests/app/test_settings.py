"""Settings are checked at start: a value that cannot work stops the process with what to change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import MIN_LEASE_SECONDS, Settings
from tests.support.processes import REPO_ROOT, service_env


@pytest.mark.parametrize("lease_s", [0.1, 0, -5, MIN_LEASE_SECONDS - 0.01])
def test_a_lease_shorter_than_the_minimum_is_refused_with_the_reason(lease_s: float) -> None:
    with pytest.raises(ValidationError, match=f"at least {MIN_LEASE_SECONDS:g} seconds"):
        Settings(lease_seconds=lease_s)


def test_the_minimum_lease_and_longer_ones_are_accepted() -> None:
    assert Settings(lease_seconds=MIN_LEASE_SECONDS).lease_seconds == MIN_LEASE_SECONDS
    assert Settings().lease_seconds == 60


def test_a_worker_with_a_too_short_lease_stops_at_start_and_says_why(tmp_path: Path) -> None:
    env = service_env(tmp_path, TRAINQ_LEASE_SECONDS="0.1")
    done = subprocess.run(
        [sys.executable, "-m", "worker"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "TRAINQ_LEASE_SECONDS must be at least" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://trainq:pw@db:5432/trainq",
        "postgres://trainq:pw@db:5432/trainq",
        "postgresql+psycopg://trainq:pw@db:5432/trainq",
    ],
)
def test_a_postgresql_url_uses_the_installed_driver(url: str) -> None:
    assert Settings(database_url=url).database_url == "postgresql+psycopg://trainq:pw@db:5432/trainq"


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg2://db/trainq", "mysql://db/trainq", "var/trainq.db", "sqlite:var/x.db"]
)
def test_other_database_urls_are_refused_with_the_forms_that_work(url: str) -> None:
    with pytest.raises(ValidationError, match=r"sqlite:///<file> or postgresql\+psycopg://"):
        Settings(database_url=url)


@pytest.mark.parametrize("url", ["api-host:8000", "ftp://api-host"])
def test_a_worker_api_url_must_be_http(url: str) -> None:
    with pytest.raises(ValidationError, match="must start with http:// or https://"):
        Settings(api_url=url)
    assert Settings(api_url="http://api-host:8000/").api_url == "http://api-host:8000"
