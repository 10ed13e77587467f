"""Target 3 of the performance issue: how soon an idle worker starts a new job.

    python bench/pickup.py [--jobs 40]

Starts a real API and one worker with the default settings, then submits tiny jobs
one at a time, each only after the last one ended and the worker is idle again, and
reports the percentiles of started_at - created_at (submit to claim, from the
database's own timestamps). Target: p50 <= 100 ms, p99 <= 250 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import datetime

from live_service import live_service, run_job

TINY_JOB = {
    "dataset": "fake",
    "fake_samples": 20,
    "image_size": 8,
    "model": "mlp",
    "epochs": 1,
    "batch_size": 16,
}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()
    delays_ms: list[float] = []
    with live_service() as (http, _):
        run_job(http, TINY_JOB)  # the first claim waits for the worker's start-up
        for _ in range(args.jobs):
            # Submit at a random point of the worker's idle poll, as real users do.
            time.sleep(random.uniform(0, 1))
            job = run_job(http, TINY_JOB)
            created = datetime.fromisoformat(job["created_at"])
            delays_ms.append((datetime.fromisoformat(job["started_at"]) - created).total_seconds() * 1000)
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
