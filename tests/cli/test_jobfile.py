"""How `trainq submit` reads a job file and `--set` values, and which source wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainq.jobfile import JobFileError, JobRequest, build_request, parse_assignments, read_job_file


def test_a_file_without_body_keys_holds_only_hyperparameters(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"epochs": 3, "model": "mlp"}))
    assert read_job_file(path) == JobRequest(hyperparameters={"epochs": 3, "model": "mlp"})


def test_a_yaml_body_keeps_its_name_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("name: nightly\nmax_runtime_seconds: 600\nhyperparameters: {epochs: 2}\n")
    assert read_job_file(path) == JobRequest(
        hyperparameters={"epochs": 2}, name="nightly", max_runtime_seconds=600
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list\n", "must hold a mapping"),
        ("name: x\nepochs: 2\n", "unknown keys epochs"),
        ("hyperparameters: 3\n", "'hyperparameters' must be a mapping"),
        ("epochs: [unclosed\n", "cannot read"),
    ],
)
def test_an_unusable_file_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(JobFileError, match=message):
        read_job_file(path)


def test_yaml_dates_are_sent_as_text_for_the_server_to_judge(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("name: 2024-01-02\n")
    assert read_job_file(path).name == "2024-01-02"


def test_set_values_are_typed_like_yaml_scalars() -> None:
    parsed = parse_assignments(
        ["momentum=0.8", "pretrained=true", "step_size=null", "model=mlp", "day=2024-01-02"]
    )
    assert parsed == {
        "momentum": 0.8,
        "pretrained": True,
        "step_size": None,
        "model": "mlp",
        "day": "2024-01-02",
    }
    with pytest.raises(JobFileError, match="key=value"):
        parse_assignments(["momentum"])


def test_flags_win_over_set_and_set_wins_over_the_file() -> None:
    base = JobRequest(hyperparameters={"epochs": 5, "seed": 1, "model": "mlp"}, name="file", max_attempts=4)
    built = build_request(
        base,
        assignments={"epochs": 6, "seed": 2},
        flags={"epochs": 7, "model": None},
        name=None,
        max_attempts=2,
        max_runtime_seconds=None,
    )
    assert built == JobRequest(
        hyperparameters={"epochs": 7, "seed": 2, "model": "mlp"}, name="file", max_attempts=2
    )
