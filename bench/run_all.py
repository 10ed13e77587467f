"""Every benchmark in turn, one at a time, then the lines that state each target's verdict.

    python bench/run_all.py [--quick]

Runs overhead, defaults, pickup, queue_db, api_load, downloads, start_cost, scale and cpu_share, and
gpu_train when CUDA is available, each as its own process with its output shown as it comes.
--quick passes small sizes: a check that every script runs (a few minutes), not figures to
quote. A script that fails is reported and the others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from live_service import ROOT

QUICK_ARGS = {
    "overhead.py": ["--epochs", "1", "--repeats", "1"],
    "defaults.py": ["--epochs", "3"],
    "pickup.py": ["--jobs", "5"],
    "queue_db.py": ["--quick"],
    "api_load.py": ["--seconds", "1"],
    "downloads.py": ["--mib", "20", "--repeats", "1"],
    "start_cost.py": ["--jobs", "3"],
    "scale.py": ["--jobs", "2000", "--metric-rows", "20000", "--requests", "50"],
    "cpu_share.py": ["--epochs", "1", "--batch-size", "128"],
    "gpu_train.py": ["--steps", "5", "--warmup", "2"],
}
# A verdict ("met" / "NOT met"), a headline of percentiles, the GPU benchmark's ratios or queue_db's
# (no target), or a script's reason for measuring nothing.
SUMMARY = re.compile(r"\bmet\b|: p50 |/ naive = |PostgreSQL / SQLite = |pickup p50 |nothing measured")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def run(script: str, args: list[str]) -> tuple[int, list[str]]:
    """Run one script, echoing its output; (exit status, its summary lines)."""
    summary = []
    with subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # lines as they are printed, not at exit
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if SUMMARY.search(line):
                summary.append(line.rstrip())
    return process.returncode, summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: check the scripts run")
    args = parser.parse_args()
    scripts = [script for script in QUICK_ARGS if script != "gpu_train.py" or cuda_available()]
    summaries: dict[str, list[str]] = {}
    failed = False
    for script in scripts:
        print(f"\n=== {script}", flush=True)
        start = time.perf_counter()
        status, summaries[script] = run(script, QUICK_ARGS[script] if args.quick else [])
        print(f"=== {script}: {time.perf_counter() - start:.0f} s, exit status {status}", flush=True)
        if status != 0:
            failed = True
            summaries[script].append(f"FAILED with exit status {status}")
    if "gpu_train.py" not in scripts:
        summaries["gpu_train.py"] = ["skipped: no CUDA device is visible"]
    print("\n=== summary" + (" (--quick: small sizes, not figures to quote)" if args.quick else ""))
    for script, lines in summaries.items():
        print(f"{script}:")
        for line in lines:
            print(f"  {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
