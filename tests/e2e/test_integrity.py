"""The real processes refuse a damaged database, and the API reports one that forgot jobs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.models import new_job_id
from tests.e2e.conftest import running_service
from tests.support.damage import break_btree_page, trainq_database, write_not_a_database
from tests.support.processes import API_COMMAND, ServiceProcess, free_port, service_env, start_worker

# Generous: the process only has to import, check the file and exit.
EXIT_TIMEOUT_S = 120


def damaged_btree(db_path: Path) -> None:
    trainq_database(f"sqlite:///{db_path}", jobs=3)
    break_btree_page(db_path)


@pytest.mark.parametrize("damage", [damaged_btree, write_not_a_database], ids=["btree", "not-a-database"])
def test_worker_refuses_to_start_on_a_damaged_database(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    damage(tmp_path / "trainq.db")
    worker = start_worker(service_env(tmp_path), tmp_path / "worker.log")
    try:
        exit_code = worker.wait(timeout_s=EXIT_TIMEOUT_S)
    finally:
        worker.stop()
    log = worker.log()
    assert exit_code != 0, log
    assert f"trainq worker: the database {tmp_path / 'trainq.db'} is damaged" in log
    assert '".recover"' in log
    assert "Traceback" not in log


def test_api_refuses_to_start_on_a_damaged_database(tmp_path: Path) -> None:
    damaged_btree(tmp_path / "trainq.db")
    command = [sys.executable, "-m", *API_COMMAND, "--host", "127.0.0.1", "--port", str(free_port())]
    api = ServiceProcess(command, service_env(tmp_path), tmp_path / "api.log")
    try:
        exit_code = api.wait(timeout_s=EXIT_TIMEOUT_S)
    finally:
        api.stop()
    log = api.log()
    assert exit_code != 0, log
    assert f"DamagedDatabase: the database {tmp_path / 'trainq.db'} is damaged" in log
    assert "Application startup failed" in log


def test_api_serves_degraded_and_says_so_when_the_database_forgot_jobs(tmp_path: Path) -> None:
    forgotten = new_job_id()
    (tmp_path / "artifacts" / forgotten / "logs").mkdir(parents=True)
    with running_service(tmp_path) as service:
        response = service.http.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert forgotten in response.json()["problems"][0]
    assert f"the database sqlite:///{tmp_path / 'trainq.db'} knows less" in (tmp_path / "api.log").read_text()
