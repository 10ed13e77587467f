"""Targets 1 and 2 of the performance issue: what the service costs on top of the loop.

    python bench/overhead.py [--epochs 5] [--batch-size 16] [--repeats 3]

Alternates, in one session on one machine, the hand-written loop (bench/naive_loop.py,
a fresh process) and the same job (digits, small_cnn, same batch size and epochs)
through a real API and a warm worker. The service's rate counts the worker's whole
time from claim to finish (started_at to finished_at: process start, data, training,
validation, checkpoints, database writes). Prints each pair and the median ratio:
target 1 wants service / naive >= 0.98, target 2 wants >= 1.1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import datetime

import httpx
from live_service import ROOT, live_service, run_job

DIGITS_TRAIN_SAMPLES = 1438  # 1,797 digits less the 20 % validation split


def naive_rate(epochs: int, batch_size: int) -> float:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "naive_loop.py"),
            "--epochs",
            str(epochs),
            "--batch-size",
            str(batch_size),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(out)["samples_per_second"])


def service_rate(http: httpx.Client, epochs: int, batch_size: int) -> float:
    job = run_job(
        http, {"dataset": "digits", "model": "small_cnn", "epochs": epochs, "batch_size": batch_size}
    )
    seconds = (
        datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    ).total_seconds()
    return DIGITS_TRAIN_SAMPLES * epochs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ratios = []
    with live_service(TRAINQ_POLL_INTERVAL_SECONDS="0.05") as (http, _):
        service_rate(http, 1, args.batch_size)  # warm-up: the worker's fork server is ready
        for repeat in range(args.repeats):
            naive = naive_rate(args.epochs, args.batch_size)
            service = service_rate(http, args.epochs, args.batch_size)
            ratios.append(service / naive)
            print(
                f"run {repeat + 1}: naive loop {naive:,.0f} samples/s, "
                f"service (claim to finish) {service:,.0f} samples/s, ratio {service / naive:.2f}"
            )
    median = statistics.median(ratios)
    print(
        f"median service/naive = {median:.2f} (digits, small_cnn, batch {args.batch_size}, {args.epochs} epochs, "
        f"{os.cpu_count()} CPUs); target 1 >= 0.98: {'met' if median >= 0.98 else 'NOT met'}; "
        f"target 2 >= 1.1: {'met' if median >= 1.1 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
