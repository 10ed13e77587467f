"""Target 6 of the performance issue: on a warm worker, claim to first training batch.

    python bench/start_cost.py [--jobs 10]
    python bench/start_cost.py --dataset imagefolder [--repeats 1] [--epochs 3] [--models small_cnn ...]

Starts a real API and one worker (default settings), runs a warm-up job, then digits
jobs of one epoch one after another. For each, the start cost is the time from the
claim (the job's started_at) to the training process's log line "first training batch
done at unix time <t>" (GET /jobs/{id}/logs); both clocks are this machine's wall
clock. The log's own timestamps split it into stages. As context, the same run times
a fresh `python -c "import torch"`, which the worker's fork server saves every job.
Target: < 0.5 s (judged on p90).

--dataset imagefolder times a 600-image JPEG folder instead (bench/imagefolder_start.py):
claim to first batch <= 2 s, epoch 1 <= 1.5x a later epoch, and `cache: memory` later epochs
at >= 0.8x the speed of the same shape of data held as tensors.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import imagefolder_start
from live_service import live_service, percentile, run_job

DIGITS_JOB = {"dataset": "digits", "model": "small_cnn", "epochs": 1}
FIRST_BATCH = re.compile(r"first training batch done at unix time ([0-9.]+)")
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
# Log lines that end each stage, in order: the training process runs, the data is loaded,
# the model and optimizer are built (the first batch ends the last stage).
STAGES = {
    "process started": re.compile(r"training process \d+ started"),
    "data loaded": re.compile(r": \d+ train"),
    "model ready": re.compile(r"training \w+ on"),
}


def wall_time(text: str) -> datetime:
    """The API's timestamps are UTC, with or without an offset."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def measure(
    http: httpx.Client, hyperparameters: dict[str, object] = DIGITS_JOB
) -> tuple[float, dict[str, float], str]:
    """(claim to first batch, claim to the end of each stage found in the log, the job's id), in seconds."""
    job = run_job(http, hyperparameters)
    claimed = wall_time(job["started_at"]).timestamp()
    log = http.get(f"/jobs/{job['id']}/logs").text
    found = FIRST_BATCH.search(log)
    if found is None:
        raise SystemExit(f"job {job['id']}'s log has no 'first training batch done' line:\n{log}")
    stages: dict[str, float] = {}
    for line in log.splitlines():
        stamp = LOG_TIME.match(line)
        for stage, pattern in STAGES.items():
            if stamp and stage not in stages and pattern.search(line):
                # The log writes local time, to the millisecond.
                local = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
                stages[stage] = local.timestamp() - claimed
    return float(found.group(1)) - claimed, stages, job["id"]


def split_text(found: dict[str, float]) -> str:
    return ", ".join(f"{stage} +{seconds * 1000:.0f} ms" for stage, seconds in found.items())


def imagefolder(repeats: int, epochs: int, models: list[str]) -> None:
    """The image-folder jobs, each `repeats` times in turn, then their medians and verdicts."""
    jobs = imagefolder_start.jobs(epochs, models)
    results: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in jobs}
    with live_service() as (http, state):
        imagefolder_start.write_folder(state / "data")
        run_job(http, DIGITS_JOB)  # warm-up: the worker's fork server has loaded torch
        for number in range(1, repeats + 1):
            for name, hyperparameters in jobs.items():
                cost, found, job_id = measure(http, hyperparameters)
                epochs_s = imagefolder_start.epoch_seconds(http, job_id)
                results[name].append((cost, epochs_s))
                print(
                    f"run {number} {name}: claim to first batch {cost * 1000:.0f} ms ({split_text(found)}); "
                    f"epochs {', '.join(f'{s:.2f}' for s in epochs_s)} s",
                    flush=True,
                )
    imagefolder_start.report(results)


def python_seconds(code: str, repeats: int = 3) -> float:
    """Median wall time of a fresh interpreter running `code`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--dataset", choices=["digits", "imagefolder"], default="digits")
    parser.add_argument("--repeats", type=int, default=1, help="imagefolder: runs of each job")
    parser.add_argument("--epochs", type=int, default=3, help="imagefolder: epochs of each job (>= 2)")
    parser.add_argument(
        "--models", nargs="+", choices=imagefolder_start.MODELS, default=list(imagefolder_start.MODELS)
    )
    args = parser.parse_args()
    if args.dataset == "imagefolder":
        imagefolder(args.repeats, max(args.epochs, 2), args.models)
        return
    costs: list[float] = []
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    with live_service() as (http, _):
        run_job(http, DIGITS_JOB)  # warm-up: the worker's fork server has loaded torch
        for number in range(1, args.jobs + 1):
            cost, found, _ = measure(http)
            costs.append(cost)
            for stage, seconds in found.items():
                stages[stage].append(seconds)
            print(
                f"job {number}: claim to first batch {cost * 1000:.0f} ms ({split_text(found)})", flush=True
            )
    bare = python_seconds("pass")
    with_torch = python_seconds("import torch")
    p50, p90 = statistics.median(costs), percentile(costs, 0.9)
    print(
        f"claim to first training batch over {len(costs)} digits jobs: p50 {p50 * 1000:.0f} ms, "
        f"p90 {p90 * 1000:.0f} ms, max {max(costs) * 1000:.0f} ms"
    )
    medians = ", ".join(
        f"{stage} +{statistics.median(values) * 1000:.0f} ms" for stage, values in stages.items() if values
    )
    print(f"median stage ends after the claim: {medians}")
    print(
        f"context: a fresh python -c 'import torch' takes {with_torch:.2f} s "
        f"(python -c 'pass' {bare:.2f} s), median of 3, same run"
    )
    print(f"target claim to first batch < 0.5 s (p90, {p90:.2f} s): {'met' if p90 < 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
