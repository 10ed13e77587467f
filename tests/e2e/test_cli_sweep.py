"""`trainq sweep submit/show/cancel` against a live API with a real worker."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import Service
from tests.support.cli import failed_with, trainq
from tests.support.polling import wait_for

SWEEP_YAML = """\
name: lr-cli
method: grid
max_parallel: 1
base:
  hyperparameters: {dataset: digits, epochs: 1, batch_size: 64, seed: 3}
parameters:
  learning_rate:
    values: [0.00001, 0.01]
"""


def test_a_yaml_sweep_is_submitted_trained_one_job_at_a_time_and_shown_best_first(
    live: Service, tmp_path: Path
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP_YAML)
    submitted = trainq(live, "sweep", "submit", str(path))
    assert submitted.exit_code == 0, submitted.output
    sweep_id = submitted.stdout.strip()
    assert submitted.stdout == f"{sweep_id}\n"
    assert "2 jobs queued" in submitted.stderr

    def finished() -> dict | None:
        sweep = live.http.get(f"/sweeps/{sweep_id}").json()
        assert sweep["counts"]["running"] <= 1  # max_parallel, seen from outside
        return sweep if sweep["counts"]["succeeded"] == 2 else None

    sweep = wait_for(finished, timeout_s=180, interval_s=0.1, what="both jobs of the sweep to succeed")
    # A learning rate of 1e-5 barely moves in one epoch; 0.01 learns the digits.
    assert [job["parameters"]["learning_rate"] for job in sweep["jobs"]] == [0.01, 0.00001]
    started = sorted(live.job(job["id"])["started_at"] for job in sweep["jobs"])
    finished_at = sorted(live.job(job["id"])["finished_at"] for job in sweep["jobs"])
    assert finished_at[0] <= started[1]  # one at a time

    shown = trainq(live, "sweep", "show", sweep_id)
    assert shown.exit_code == 0, shown.output
    rows = [line.split() for line in shown.stdout.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [(row[0], row[1], row[2], row[-1]) for row in rows] == [
        ("1", sweep["jobs"][0]["id"], "succeeded", "0.01"),
        ("2", sweep["jobs"][1]["id"], "succeeded", "1e-05"),
    ]
    assert "lr-cli (grid, at most 1 at once): 2 succeeded" in shown.stdout
    assert "LEARNING_RATE" in shown.stdout
    assert json.loads(trainq(live, "sweep", "show", sweep_id, "--json").stdout)["id"] == sweep_id


def test_a_sweep_with_an_invalid_combination_is_refused_with_its_name(live: Service, tmp_path: Path) -> None:
    path = tmp_path / "sweep.json"
    body = {"name": "bad", "method": "grid", "parameters": {"epochs": {"values": [1, 5000]}}}
    path.write_text(json.dumps(body))
    failed_with(
        trainq(live, "sweep", "submit", str(path)), "combination #2 (epochs=5000)", "less than or equal"
    )


def test_cancelling_a_sweep_from_the_command_line(live: Service, tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    # 50 epochs each: none can end before the cancel, which follows the submit at once.
    path.write_text(
        "method: random\ntrials: 3\nseed: 1\nbase: {hyperparameters: {dataset: digits, epochs: 50}}\n"
        "parameters: {learning_rate: {min: 0.001, max: 0.1, distribution: log_uniform}}\nmax_parallel: 1\n"
    )
    sweep_id = trainq(live, "sweep", "submit", str(path)).stdout.strip()
    cancelled = trainq(live, "sweep", "cancel", sweep_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.stdout.strip() == f"{sweep_id} 3 cancelled"
    failed_with(trainq(live, "sweep", "show", "nope"), "sweep 'nope' not found")
