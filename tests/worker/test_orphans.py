"""No process of a job outlives it: the environment marks them, the kernel kills them with their parent."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.polling import wait_for
from tests.support.processes import is_alive
from worker.orphans import ATTEMPT_ENV, JOB_ID_ENV, kill_attempt, processes_of

SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        process.kill()
        process.wait()


def start(started: list[subprocess.Popen[bytes]], command: list[str], **env: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env={**os.environ, **env})
    started.append(process)
    return process


def test_kill_attempt_kills_the_processes_of_that_attempt_only(
    started: list[subprocess.Popen[bytes]],
) -> None:
    mine = [start(started, SLEEP, **{JOB_ID_ENV: "job-a", ATTEMPT_ENV: "2"}) for _ in range(2)]
    earlier = start(started, SLEEP, **{JOB_ID_ENV: "job-a", ATTEMPT_ENV: "1"})
    other = start(started, SLEEP, **{JOB_ID_ENV: "job-b", ATTEMPT_ENV: "2"})
    wait_for(lambda: len(processes_of("job-a", 2)) == 2, timeout_s=30, what="both processes to start")

    assert sorted(kill_attempt("job-a", 2)) == sorted(p.pid for p in mine)
    assert [p.wait(timeout=10) for p in mine] == [-9, -9]
    assert processes_of("job-a", 2) == []
    assert earlier.poll() is None and other.poll() is None


def test_a_process_started_through_the_launcher_dies_with_its_parent(
    started: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild"
    # The parent starts `worker.orphans <its pid> -- sleep`, notes the sleeper's pid, and waits.
    parent_code = (
        "import os, subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-m', 'worker.orphans', str(os.getpid()), '--', *{SLEEP!r}])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(600)\n"
    )
    parent = start(started, [sys.executable, "-c", parent_code])
    grandchild = int(wait_for(lambda: pid_file.is_file() and pid_file.read_text(), timeout_s=30))
    wait_for(
        lambda: b"time.sleep" in Path(f"/proc/{grandchild}/cmdline").read_bytes(),
        timeout_s=30,
        what="the launcher to become the sleeper",
    )
    parent.kill()
    wait_for(lambda: not is_alive(grandchild), timeout_s=10, what="the sleeper to die with its parent")
