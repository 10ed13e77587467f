"""The benchmark scripts start and their cheapest paths run, so they cannot rot between runs.

Nothing here is timed: the figures are the scripts' business (BENCHMARKS.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.databases import require_server, server_url
from tests.support.processes import REPO_ROOT

SCRIPTS = [
    "api_load.py",
    "cpu_share.py",
    "defaults.py",
    "downloads.py",
    "gpu_check.py",
    "gpu_train.py",
    "load_client.py",
    "naive_loop.py",
    "overhead.py",
    "pickup.py",
    "queue_db.py",
    "run_all.py",
    "scale.py",
    "start_cost.py",
    "wrk_load.py",
]
# A safety net against a hung child, not a measurement.
LIMIT_S = 300


def bench(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=LIMIT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_script_explains_itself_with_help(script: str) -> None:
    assert "usage:" in bench(script, "--help").stdout


def test_the_gpu_benchmark_runs_its_naive_loop_and_the_service_path_on_the_cpu() -> None:
    # One thread: with the cores busy elsewhere, torch's spinning threads make a few steps take minutes.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["--device", "cpu", "--steps", "2", "--warmup", "0", "--image-size", "16", "--batch-size", "4"]
    out = bench("gpu_train.py", *args, "--variants", "fp32", env=env).stdout
    assert "naive loop again:" in out
    assert "service fp32 / naive = " in out


def test_the_defaults_benchmark_alternates_epochs_of_both_loops() -> None:
    out = bench("defaults.py", "--epochs", "3", "--batch-size", "128").stdout
    assert sum(line.startswith("epoch ") for line in out.splitlines()) == 2
    assert "median service path / naive loop = " in out


def test_the_cpu_share_benchmark_trains_alone_and_in_pairs_with_the_policy_off_and_on() -> None:
    out = bench("cpu_share.py", "--epochs", "1", "--batch-size", "128").stdout
    cpus = len(os.sched_getaffinity(0))
    share = max(1, cpus // 2)  # two workers on this host
    # Each pair's two jobs: every core each with the policy off, their share with it on.
    seen = re.findall(r"\((\d+) intra-op / (\d+) inter-op threads\)", out)
    assert sorted(seen) == sorted([(str(cpus), str(cpus))] * 2 + [(str(share), str(share))] * 2), out
    assert "two jobs at once / one job alone (the slower job): before " in out


def test_the_start_cost_benchmark_times_an_image_folder_against_a_tensor_dataset() -> None:
    args = ["--dataset", "imagefolder", "--models", "small_cnn", "--epochs", "2"]
    out = bench("start_cost.py", *args, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    assert re.search(r"small_cnn: claim to first batch [0-9.]+ s, .* epoch 1 / later = [0-9.]+x", out)
    assert "target small_cnn epoch 1 <= 1.5x a later epoch" in out
    assert "cache: memory later epochs / tensor dataset (speed, small_cnn, same run) = " in out


def test_the_download_benchmark_resumes_a_download_with_range_requests() -> None:
    out = bench("downloads.py", "--mib", "2", "--repeats", "1").stdout
    assert "sha256 matches" in out
    assert "target Range resume with matching sha256: met" in out


def test_the_scale_benchmark_builds_its_database_and_shows_the_query_plans(tmp_path: Path) -> None:
    # The database is cached in the temp folder: this one, so that nothing is left behind.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = bench("scale.py", "--jobs", "300", "--metric-rows", "2000", "--requests", "3", env=env).stdout
    assert "jobs: 300 rows, epoch_metrics: 2,000 rows" in out
    assert "plan, GET /jobs?limit=50: SELECT ... FROM jobs" in out
    assert re.search(r"target GET /jobs/\{id\} \(\d+ metric rows\) p99 < 20 ms", out)
    assert list(tmp_path.glob("trainq-bench-scale-300-2000-*.db"))


def test_the_queue_benchmark_claims_every_job_once_on_both_databases() -> None:
    require_server()
    out = bench("queue_db.py", "--quick", "--postgres-url", server_url()).stdout
    rows = [line for line in out.splitlines() if line.startswith(("PostgreSQL ", "SQLite "))]
    assert sum(" yes: " in row for row in rows) == 4, out
    assert "PostgreSQL / SQLite = " in out
    assert "polling / LISTEN/NOTIFY = " in out
    assert "LISTEN/NOTIFY, poll every 1 s" in out  # the workers listened


def test_the_queue_benchmark_measures_nothing_without_a_server() -> None:
    out = bench("queue_db.py", "--quick", "--postgres-url", "postgresql://postgres@127.0.0.1:1/none").stdout
    assert "is not reachable" in out
    assert "nothing measured" in out
