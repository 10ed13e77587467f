"""How `trainq sweep submit` reads a sweep file, and how `trainq sweep show` lays out its ranking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from trainq.jobfile import JobFileError
from trainq.sweep import ranked_table, read_sweep_file


def test_yaml_and_json_sweep_files_read_the_same(tmp_path: Path) -> None:
    body = {"method": "grid", "parameters": {"learning_rate": {"values": [0.1, 0.01]}}, "max_parallel": 2}
    (tmp_path / "s.json").write_text(json.dumps(body))
    (tmp_path / "s.yaml").write_text(
        "method: grid\nmax_parallel: 2\nparameters:\n  learning_rate:\n    values: [0.1, 0.01]\n"
    )
    assert read_sweep_file(tmp_path / "s.json") == read_sweep_file(tmp_path / "s.yaml") == body


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a list\n", "must hold a sweep"), ("method: grid\n", "must hold a sweep"), ("a: [\n", "cannot read")],
)
def test_a_file_that_is_not_a_sweep_says_what_it_must_hold(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(JobFileError, match=message):
        read_sweep_file(path)


def test_the_ranked_table_has_a_column_per_varied_hyperparameter_in_the_servers_order() -> None:
    job = {"status": "succeeded", "current_epoch": 3}
    sweep = {
        "varied": ["learning_rate", "batch_size"],
        "jobs": [
            {
                **job,
                "id": "a" * 32,
                "best_val_accuracy": 0.91234,
                "parameters": {"learning_rate": 0.01, "batch_size": 32},
            },
            {
                **job,
                "id": "b" * 32,
                "best_val_accuracy": None,
                "parameters": {"learning_rate": 1e-5, "batch_size": 64},
            },
        ],
    }
    console = Console(width=120, record=True)
    console.print(ranked_table(sweep))
    lines = [line.split() for line in console.export_text().splitlines()]
    assert lines[0] == ["#", "ID", "STATUS", "VAL", "ACC", "EPOCH", "LEARNING_RATE", "BATCH_SIZE"]
    assert lines[1] == ["1", "a" * 32, "succeeded", "0.9123", "3", "0.01", "32"]
    assert lines[2] == ["2", "b" * 32, "succeeded", "-", "3", "1e-05", "64"]
