"""How `trainq submit` reads a job file and `--set` values, and which source wins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainq.jobfile import (
    JobFileError,
    JobRequest,
    build_request,
    overlaid,
    parse_assignments,
    read_job_file,
    request_of_job,
)


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
        ("name: x\nepochs: 2\n", "unknown keys epochs; a job body has"),
        ("name: x\nmax_attempt: 2\n", r"unknown keys max_attempt \(did you mean max_attempts\?\)"),
        ("name: x\nnmae: y\nresource: {}\n", r"\(did you mean name for nmae, resources for resource\?\)"),
        ("hyperparameters: 3\n", "'hyperparameters' must be a mapping"),
        ("resources: 2\n", "'resources' must be a mapping"),
        ("tags: baseline\n", "'tags' must be a list"),
        ("epochs: [unclosed\n", "cannot read"),
    ],
)
def test_an_unusable_file_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(JobFileError, match=message):
        read_job_file(path)


def test_a_files_resources_are_passed_on_as_written_for_the_server_to_judge(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("resources: {devices: 0, labels: [A100], colour: red}\nhyperparameters: {epochs: 2}\n")
    assert read_job_file(path) == JobRequest(
        hyperparameters={"epochs": 2}, resources={"devices": 0, "labels": ["A100"], "colour": "red"}
    )


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


def built(base: JobRequest, **command_line: Any) -> JobRequest:
    """build_request with nothing on the command line but `command_line`."""
    nothing: dict[str, Any] = {
        "assignments": {},
        "flags": {},
        "name": None,
        "max_attempts": None,
        "max_runtime_seconds": None,
        "devices": None,
        "labels": [],
    }
    return build_request(base, **{**nothing, **command_line})


def test_flags_win_over_set_and_set_wins_over_the_file() -> None:
    base = JobRequest(hyperparameters={"epochs": 5, "seed": 1, "model": "mlp"}, name="file", max_attempts=4)
    request = built(
        base, assignments={"epochs": 6, "seed": 2}, flags={"epochs": 7, "model": None}, max_attempts=2
    )
    assert request == JobRequest(
        hyperparameters={"epochs": 7, "seed": 2, "model": "mlp"}, name="file", max_attempts=2
    )


def build_resources(base: dict | None, *, devices: int | None, labels: list[str]) -> dict | None:
    return built(JobRequest(resources=base), devices=devices, labels=labels).resources


def test_devices_replace_the_files_count_and_labels_are_added_to_the_files() -> None:
    from_file = {"devices": 4, "labels": ["a100", "fast"]}
    assert build_resources(from_file, devices=2, labels=["fast", "nvlink", "nvlink"]) == {
        "devices": 2,
        "labels": ["a100", "fast", "nvlink"],
    }
    assert build_resources(from_file, devices=None, labels=[]) == from_file
    assert build_resources({"labels": ["a100"]}, devices=3, labels=[]) == {"devices": 3, "labels": ["a100"]}


def test_resources_are_sent_only_when_the_file_or_the_command_line_gives_them() -> None:
    assert build_resources(None, devices=None, labels=[]) is None
    assert build_resources(None, devices=2, labels=[]) == {"devices": 2}
    assert build_resources(None, devices=None, labels=["fast"]) == {"labels": ["fast"]}


def test_labels_cannot_be_added_to_a_files_labels_that_are_not_a_list() -> None:
    with pytest.raises(JobFileError, match="in the job file must be a list for --label"):
        build_resources({"labels": "a100"}, devices=None, labels=["fast"])
    # Without --label the file's value goes to the server as written, and its 422 names the field.
    assert build_resources({"labels": "a100"}, devices=2, labels=[]) == {"devices": 2, "labels": "a100"}


def test_priority_comes_from_the_file_or_an_earlier_job_and_the_flag_wins(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("priority: 5\nhyperparameters: {epochs: 2}\n")
    from_file = read_job_file(path)
    assert from_file.priority == 5
    assert request_of_job({"hyperparameters": {}, "resources": None, "priority": -3}).priority == -3

    assert built(from_file, priority=None).priority == 5
    assert built(from_file, priority=9).priority == 9
    assert built(JobRequest(), priority=None).priority is None  # not sent: the server's default


def test_tags_come_from_the_file_or_an_earlier_job_and_tag_flags_are_added_once(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("tags: [baseline, digits]\nhyperparameters: {epochs: 2}\n")
    from_file = read_job_file(path)
    assert from_file.tags == ["baseline", "digits"]
    earlier = request_of_job({"hyperparameters": {}, "resources": None, "tags": ["old"]})
    assert earlier.tags == ["old"]
    assert overlaid(earlier, from_file).tags == ["baseline", "digits"]
    assert overlaid(earlier, JobRequest()).tags == ["old"]  # a file without tags keeps the job's

    assert built(from_file, tags=["digits", "lr-sweep", "lr-sweep"]).tags == [
        "baseline",
        "digits",
        "lr-sweep",
    ]
    assert built(from_file, tags=[]).tags == ["baseline", "digits"]
    assert built(JobRequest(), tags=["a"]).tags == ["a"]
    assert built(JobRequest(), tags=[]).tags is None  # not sent: no tags
