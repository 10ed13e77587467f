"""A real API and worker on a temporary SQLite file, for the benchmark scripts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
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


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (fraction 0.99 for p99) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# A live service is private to its script (its API listens on 127.0.0.1 only), and the script's
# client sends no key: keys meant for the real service (the image's TRAINQ_API_KEYS) stay out.
_NOT_INHERITED = frozenset({"TRAINQ_API_KEYS", "TRAINQ_API_KEYS_FILE"})


def service_env(state_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of an API or worker keeping its database and files under state_dir."""
    return {
        **{name: value for name, value in os.environ.items() if name not in _NOT_INHERITED},
        "TRAINQ_DATABASE_URL": f"sqlite:///{state_dir}/trainq.db",
        "TRAINQ_ARTIFACTS_DIR": f"{state_dir}/artifacts",
        "TRAINQ_DATA_DIR": f"{state_dir}/data",
        **settings,
    }


def _output(quiet: bool) -> dict[str, Any]:
    return {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} if quiet else {}


def start_api(
    env: Mapping[str, str],
    port: int,
    *,
    quiet: bool = True,
    log_level: str | None = "warning",
    app: str = "app.main:app",
    loop: str = "asyncio",
) -> subprocess.Popen[bytes]:
    """uvicorn serving `app` on 127.0.0.1:port with `make run`'s event loop unless `loop` says
    another; log_level None starts it as `make run` does (level info, access log on)."""
    level = [] if log_level is None else ["--log-level", log_level]
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--loop", loop, "--port", str(port), *level],
        cwd=ROOT,
        env=dict(env),
        **_output(quiet),
    )


def start_worker(env: Mapping[str, str], *, quiet: bool = True) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "--log-level", "WARNING" if quiet else "INFO"],
        cwd=ROOT,
        env=dict(env),
        **_output(quiet),
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=120)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far; NaN where /proc is missing (not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) ": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def api_server(
    env: Mapping[str, str], *, log_level: str | None = None, app: str = "app.main:app", loop: str = "asyncio"
) -> Iterator[tuple[httpx.Client, subprocess.Popen[bytes]]]:
    """A healthy API alone (no worker), started as `make run` starts it unless log_level is given;
    yields a client for it and its process."""
    port = free_port()
    api = start_api(env, port, log_level=log_level, app=app, loop=loop)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            _wait_for_health(http, api)
            yield http, api
    finally:
        stop(api)


@contextmanager
def live_service(
    *, quiet: bool = True, workers: int = 1, **settings: str
) -> Iterator[tuple[httpx.Client, Path]]:
    """Yield an HTTP client for a healthy API with `workers` workers beside it, and the state folder.

    settings are extra TRAINQ_* variables, e.g. TRAINQ_POLL_INTERVAL_SECONDS="0.05".
    """
    with tempfile.TemporaryDirectory(prefix="trainq-bench-") as tmp:
        env = service_env(Path(tmp), **settings)
        # As `make run` starts them: a worker refuses a database that is not upgraded yet.
        subprocess.run(
            [sys.executable, "-m", "app.migrations"], cwd=ROOT, env=env, check=True, **_output(quiet)
        )
        port = free_port()
        api = start_api(env, port, quiet=quiet)
        started = [start_worker(env, quiet=quiet) for _ in range(workers)]
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                _wait_for_health(http, api)
                yield http, Path(tmp)
        finally:
            for process in (*started, api):
                stop(process)


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
    http: httpx.Client,
    hyperparameters: dict[str, Any],
    *,
    resources: dict[str, Any] | None = None,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Submit a job and wait until it ends; exit if it did not succeed."""
    return wait_job(http, submit_job(http, hyperparameters, resources=resources), timeout_s=timeout_s)


def submit_job(
    http: httpx.Client, hyperparameters: dict[str, Any], *, resources: dict[str, Any] | None = None
) -> str:
    """Submit a job; its id."""
    body: dict[str, Any] = {"hyperparameters": hyperparameters}
    if resources is not None:
        body["resources"] = resources
    response = http.post("/jobs", json=body)
    response.raise_for_status()
    return str(response.json()["id"])


def wait_job(http: httpx.Client, job_id: str, *, timeout_s: float = 600.0) -> dict[str, Any]:
    """Wait until a job ends and return it; exit if it did not succeed.

    It waits on the job's event stream, not by polling, so that the benchmark itself costs the
    machine nothing while the job trains."""
    with http.stream("GET", f"/jobs/{job_id}/events", timeout=timeout_s) as events:
        for line in events.iter_lines():
            if line == "event: end":
                break
    job = http.get(f"/jobs/{job_id}").json()
    if job["status"] != "succeeded":
        raise SystemExit(f"job {job_id} ended {job['status']}: {job['error']}")
    return dict(job)
