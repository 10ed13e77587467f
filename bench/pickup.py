"""Target 3 of the performance issue: how soon an idle worker starts a new job.

    python bench/pickup.py [--jobs 40]

Starts a real API and one worker with the default settings, then submits tiny jobs
one at a time, each only after the last one ended and the worker is idle again, and
reports the percentiles of started_at - created_at (submit to claim, from the
database's own timestamps). Target: p50 <= 100 ms, p99 <= 250 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TINY_JOB = {
    "dataset": "fake",
    "fake_samples": 20,
    "image_size": 8,
    "model": "mlp",
    "epochs": 1,
    "batch_size": 16,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trainq-bench-") as tmp:
        env = {
            **os.environ,
            "TRAINQ_DATABASE_URL": f"sqlite:///{tmp}/trainq.db",
            "TRAINQ_ARTIFACTS_DIR": f"{tmp}/artifacts",
            "TRAINQ_DATA_DIR": f"{tmp}/data",
        }
        port = free_port()
        quiet = {"cwd": ROOT, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--log-level", "warning"],
            **quiet,
        )
        worker = subprocess.Popen([sys.executable, "-m", "worker", "--log-level", "WARNING"], **quiet)
        delays_ms: list[float] = []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        http.get("/health").raise_for_status()
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                for index in range(args.jobs + 1):
                    job_id = http.post("/jobs", json={"hyperparameters": TINY_JOB}).json()["id"]
                    while (job := http.get(f"/jobs/{job_id}").json())["status"] not in {
                        "succeeded",
                        "failed",
                    }:
                        time.sleep(0.05)
                    if index == 0:
                        continue  # the first claim waits for the worker's start-up
                    created = datetime.fromisoformat(job["created_at"])
                    delays_ms.append(
                        (datetime.fromisoformat(job["started_at"]) - created).total_seconds() * 1000
                    )
                    # Submit at a random point of the worker's idle poll, as real users do.
                    time.sleep(random.uniform(0, 1))
        finally:
            for process in (worker, api):
                process.terminate()
                process.wait(timeout=60)
    p50, p99 = statistics.median(delays_ms), percentile(delays_ms, 0.99)
    print(
        f"submit to claim over {len(delays_ms)} jobs: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(delays_ms):.0f} ms"
    )
    print(
        f"target p50 <= 100 ms: {'met' if p50 <= 100 else 'NOT met'}; "
        f"target p99 <= 250 ms: {'met' if p99 <= 250 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
