"""The thread policy: TRAINQ_CPU_THREADS, else the worker's CPUs shared among the live workers on
its host and the job's ranks, at least one; a bad setting stops the worker at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from app.queue import workers
from app.resources import Capabilities
from app.settings import Settings
from tests.support.processes import REPO_ROOT, service_env
from worker.cpu_share import threads_for_claim, threads_per_rank
from worker.devices import count_cpus

LEASE_S = 60.0


def register(engine: Engine, worker_id: str, host: str) -> None:
    card = workers.WorkerCard(
        id=worker_id, host=host, pid=1, capabilities=Capabilities(0, 1), memory_bytes=0, version="test"
    )
    workers.register(engine, card=card, lease_seconds=LEASE_S)


def test_the_setting_wins_over_the_share() -> None:
    assert threads_per_rank(setting=3, cpus=2, workers_on_host=4, ranks=2) == 3
    assert threads_per_rank(setting=8, cpus=64, workers_on_host=1, ranks=1) == 8


def test_the_cpus_are_divided_among_the_workers_on_the_host() -> None:
    assert threads_per_rank(setting=None, cpus=32, workers_on_host=1, ranks=1) == 32
    assert threads_per_rank(setting=None, cpus=32, workers_on_host=4, ranks=1) == 8
    assert threads_per_rank(setting=None, cpus=2, workers_on_host=2, ranks=1) == 1


def test_a_workers_share_is_divided_among_the_ranks_of_its_job() -> None:
    assert threads_per_rank(setting=None, cpus=32, workers_on_host=2, ranks=4) == 4


def test_every_process_gets_at_least_one_thread() -> None:
    assert threads_per_rank(setting=None, cpus=2, workers_on_host=3, ranks=1) == 1
    assert threads_per_rank(setting=None, cpus=1, workers_on_host=1, ranks=8) == 1
    # Not yet registered (or just removed as not live): the worker counts itself.
    assert threads_per_rank(setting=None, cpus=4, workers_on_host=0, ranks=1) == 4


def test_a_claim_counts_the_live_workers_registered_on_its_own_host(engine: Engine) -> None:
    register(engine, "box:1", "box")
    assert threads_for_claim(engine, setting=None, host="box", ranks=1) == count_cpus()
    register(engine, "box:2", "box")
    register(engine, "other:3", "other")
    assert threads_for_claim(engine, setting=None, host="box", ranks=1) == max(1, count_cpus() // 2)
    workers.deregister(engine, worker_id="box:2")
    assert threads_for_claim(engine, setting=None, host="box", ranks=1) == count_cpus()
    assert threads_for_claim(engine, setting=5, host="box", ranks=1) == 5


@pytest.mark.parametrize(("text", "expected"), [("4", 4), (" 2 ", 2), ("", None)])
def test_cpu_threads_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: int | None
) -> None:
    monkeypatch.setenv("TRAINQ_CPU_THREADS", text)
    assert Settings().cpu_threads == expected


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5"])
def test_a_bad_cpu_threads_is_refused_with_what_to_change(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("TRAINQ_CPU_THREADS", text)
    with pytest.raises(ValidationError, match="must be a whole number of threads, at least 1"):
        Settings()


def test_a_worker_with_a_bad_cpu_threads_stops_at_start_with_one_line(tmp_path: Path) -> None:
    env = service_env(tmp_path, TRAINQ_CPU_THREADS="0")
    done = subprocess.run(
        [sys.executable, "-m", "worker"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr == (
        "trainq worker: invalid settings: TRAINQ_CPU_THREADS: must be a whole number of threads, at least 1 "
        "(got '0'); leave it unset to share the worker's CPUs among the workers on its host\n"
    )
