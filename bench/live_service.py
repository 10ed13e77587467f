"""A real API and worker on a temporary SQLite file, for the benchmark scripts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_service(*, quiet: bool = True, **settings: str) -> Iterator[tuple[httpx.Client, Path]]:
    """Yield an HTTP client for a healthy API with one worker beside it, and the state folder.

    settings are extra TRAINQ_* variables, e.g. TRAINQ_POLL_INTERVAL_SECONDS="0.05".
    """
    with tempfile.TemporaryDirectory(prefix="trainq-bench-") as tmp:
        env = {
            **os.environ,
            "TRAINQ_DATABASE_URL": f"sqlite:///{tmp}/trainq.db",
            "TRAINQ_ARTIFACTS_DIR": f"{tmp}/artifacts",
            "TRAINQ_DATA_DIR": f"{tmp}/data",
            **settings,
        }
        port = free_port()
        output: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} if quiet else {}
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            **output,
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "--log-level", "WARNING" if quiet else "INFO"],
            cwd=ROOT,
            env=env,
            **output,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                _wait_for_health(http, api)
                yield http, Path(tmp)
        finally:
            for process in (worker, api):
                process.terminate()
                process.wait(timeout=120)


def _wait_for_health(http: httpx.Client, api: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise SystemExit("the API exited during start-up")
        try:
            if http.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the API did not answer /health within {START_TIMEOUT_S:.0f} s")


def run_job(
    http: httpx.Client, hyperparameters: dict[str, Any], *, timeout_s: float = 600.0
) -> dict[str, Any]:
    """Submit a job and wait until it ends; exit if it did not succeed."""
    response = http.post("/jobs", json={"hyperparameters": hyperparameters})
    response.raise_for_status()
    job_id = response.json()["id"]
    deadline = time.monotonic() + timeout_s
    while (job := http.get(f"/jobs/{job_id}").json())["status"] not in {"succeeded", "failed", "cancelled"}:
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} did not end within {timeout_s:.0f} s")
        time.sleep(0.05)
    if job["status"] != "succeeded":
        raise SystemExit(f"job {job_id} ended {job['status']}: {job['error']}")
    return dict(job)
