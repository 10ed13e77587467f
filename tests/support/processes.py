"""Real service processes for end-to-end tests: a uvicorn server and `python -m worker`."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from tests.support.polling import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
# The commands the tests start are the ones the Docker image runs (tests/test_docker.py).
API_COMMAND = ["uvicorn", "app.main:app", "--loop", "asyncio"]
WORKER_COMMAND = ["python", "-m", "worker"]
HEALTH_PATH = "/health"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TRAINQ_DATABASE_URL": f"sqlite:///{state_dir / 'trainq.db'}",
            "TRAINQ_ARTIFACTS_DIR": str(state_dir / "artifacts"),
            "TRAINQ_DATA_DIR": str(state_dir / "data"),
            "TRAINQ_POLL_INTERVAL_SECONDS": "0.1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class ServiceProcess:
    """A child process whose output goes to a log file that failures can show."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            args, env=dict(env), cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        return self.process.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def start_api(state_dir: Path, env: Mapping[str, str], log_dir: Path) -> tuple[ServiceProcess, str]:
    port = free_port()
    api = ServiceProcess(
        [sys.executable, "-m", *API_COMMAND, "--host", "127.0.0.1", "--port", str(port)],
        env,
        log_dir / "api.log",
    )
    base_url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if api.process.poll() is not None:
            raise RuntimeError(f"API exited early:\n{api.log()}")
        try:
            return httpx.get(f"{base_url}{HEALTH_PATH}", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, timeout_s=30, what="the API to answer /health")
    return api, base_url


def start_worker(env: Mapping[str, str], log_path: Path, *args: str) -> ServiceProcess:
    return ServiceProcess([sys.executable, *WORKER_COMMAND[1:], *args], env, log_path)


def training_pids(worker: ServiceProcess) -> list[int]:
    """The training processes a worker started, in order, read from its log."""
    return [int(pid) for pid in re.findall(r"training process (\d+) started", worker.log())]


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not collected it yet. The
    # process may be reaped between the two reads: then it is gone too.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.split(") ")[-1][:1] != "Z"


def stop_when(pid: int, condition: Callable[[], bool], *, what: str, interval_s: float = 0.05) -> None:
    """Polls `condition` with process `pid` stopped (SIGSTOP), so that what it saw is still so when
    this returns, with the process stopped, however fast the machine runs it; SIGCONT resumes it."""

    def stopped_in_state() -> bool:
        os.kill(pid, signal.SIGSTOP)
        if condition():
            return True
        os.kill(pid, signal.SIGCONT)
        return False

    wait_for(stopped_in_state, timeout_s=120, interval_s=interval_s, what=what)
