"""Target of issue 17, part 2: two jobs training at once on two workers of one host each reach
at least 0.4x the samples/s of one job alone (0.5x is the limit on a machine they share).

    python bench/cpu_share.py [--epochs 6] [--batch-size 16]

In one run, through a real API and two real workers on this machine, digits/small_cnn trains
one job alone, then two jobs at once, then one job alone again, twice over:
  - policy off: TRAINQ_CPU_THREADS set to the CPU count, each training process uses as many
    threads as there are cores, as torch does by default (how trainq ran before the policy);
  - policy on: TRAINQ_CPU_THREADS unset, each process gets its share, the worker's CPUs
    divided by the two live workers on the host.
A job's samples/s is the median of its epochs' training rate (EpochMetrics.samples_per_second);
"alone" is the mean of the two lone runs around the pair, so that a load that drifts meanwhile
(other tenants) weighs on both sides alike. Each job of a pair is compared with one job alone
under the same policy (the target) and, strictly, with the faster of the two policies' alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime
from typing import Any

import httpx
from live_service import live_service, submit_job, wait_job

TARGET = 0.4
REGISTER_TIMEOUT_S = 120.0


def rate(job: dict[str, Any]) -> float:
    return statistics.median(row["samples_per_second"] for row in job["metrics"])


def threads(job: dict[str, Any]) -> str:
    used = job["cpu_threads"]
    return f"{used['intra_op']} intra-op / {used['inter_op']} inter-op threads"


def overlap(first: dict[str, Any], second: dict[str, Any]) -> float:
    """The share of the shorter job's claim-to-finish time that the other job ran too."""
    spans = [
        (datetime.fromisoformat(job["started_at"]), datetime.fromisoformat(job["finished_at"]))
        for job in (first, second)
    ]
    shared = (min(end for _, end in spans) - max(start for start, _ in spans)).total_seconds()
    shortest = min((end - start).total_seconds() for start, end in spans)
    return max(0.0, shared) / shortest


def wait_for_workers(http: httpx.Client, count: int) -> None:
    """Both workers registered (and so counted by each other's share) before the first claim."""
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    while len(http.get("/workers").json()) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{count} workers did not register within {REGISTER_TIMEOUT_S:.0f} s")
        time.sleep(0.5)


def measure(job: dict[str, Any], **settings: str) -> tuple[float, list[dict[str, Any]]]:
    """(one job alone's samples/s, the two jobs run at once) on a service with two workers."""
    with live_service(workers=2, TRAINQ_POLL_INTERVAL_SECONDS="0.05", **settings) as (http, _):
        wait_for_workers(http, 2)
        first = wait_job(http, submit_job(http, job))
        pair = [submit_job(http, job), submit_job(http, job)]
        together = [wait_job(http, job_id) for job_id in pair]
        last = wait_job(http, submit_job(http, job))
    print(f"  {threads(first)}: alone {rate(first):,.0f} samples/s before the pair, {rate(last):,.0f} after")
    return (rate(first) + rate(last)) / 2, together


def report(policy: str, alone: float, pair: list[dict[str, Any]], fastest_alone: float) -> float:
    """Print one policy's figures; the smaller ratio of its pair to the job alone."""
    print(f"policy {policy}: one job alone {alone:,.0f} samples/s")
    for name, job in zip("AB", pair, strict=True):
        print(
            f"  together, job {name}: {rate(job):,.0f} samples/s ({threads(job)}): "
            f"{rate(job) / alone:.2f}x alone, {rate(job) / fastest_alone:.2f}x strict"
        )
    print(f"  the two jobs ran side by side for {overlap(*pair):.0%} of the shorter one")
    return min(rate(job) / alone for job in pair)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    job = {"dataset": "digits", "model": "small_cnn", "epochs": args.epochs, "batch_size": args.batch_size}
    cpus = len(os.sched_getaffinity(0))
    off = f"off (TRAINQ_CPU_THREADS={cpus})"
    print(f"policy {off}:")
    off_alone, off_pair = measure(job, TRAINQ_CPU_THREADS=str(cpus))
    print("policy on (TRAINQ_CPU_THREADS unset):")
    on_alone, on_pair = measure(job)
    fastest = max(off_alone, on_alone)
    before = report(off, off_alone, off_pair, fastest)
    after = report("on", on_alone, on_pair, fastest)
    strict = min(rate(job) for job in on_pair) / fastest
    print(
        f"two jobs at once / one job alone (the slower job): before {before:.2f}x, after {after:.2f}x, "
        f"after strict {strict:.2f}x (digits, small_cnn, batch {args.batch_size}, {args.epochs} epochs, "
        f"{cpus} CPUs); target each >= {TARGET}x: {'met' if after >= TARGET else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
