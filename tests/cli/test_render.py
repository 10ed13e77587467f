"""How `trainq show` presents what a job needs from a worker, why a queued job waits, and how a
finished job did."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from trainq.job_details import job_details
from trainq.render import evaluation_table, fit_width, jobs_table

JOB: dict[str, Any] = {
    "id": "0123456789abcdef0123456789abcdef",
    "name": "wide",
    "owner": "alice",
    "status": "queued",
    "error": None,
    "progress": 0.0,
    "current_epoch": 0,
    "attempts": 0,
    "max_attempts": 3,
    "runtime_seconds": 0.0,
    "created_at": "2024-01-02T03:04:05Z",
    "hyperparameters": {"device": "cuda", "epochs": 2},
    "resources": {"devices": 1, "labels": []},
    "waiting_reason": None,
}


def shown(**changes: Any) -> dict[str, str]:
    console = Console(width=200, record=True)
    console.print(job_details({**JOB, **changes}))
    rows = (line.strip().split(maxsplit=1) for line in console.export_text().splitlines() if line.strip())
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


def test_resources_beyond_one_device_are_shown_with_their_labels_and_kind() -> None:
    assert "resources" not in shown()
    assert shown(resources={"devices": 2, "labels": []})["resources"] == "2 devices (cuda)"
    labelled = shown(resources={"devices": 1, "labels": ["a100", "fast"]})
    assert labelled["resources"] == "1 device (cuda), labels [a100, fast]"


def test_a_queued_jobs_waiting_reason_is_shown_as_written() -> None:
    reason = (
        "no live worker has 2 cuda devices with labels [a100] (1 live worker: gpu-a:41 has cuda:1 cpu:32)"
    )
    assert "waiting" not in shown()
    assert shown(waiting_reason=reason)["waiting"] == reason
    assert "waiting" not in shown(status="running", waiting_reason=reason)


def test_a_queued_jobs_place_in_the_queue_is_shown_as_an_ordinal_with_the_jobs_running_ahead() -> None:
    assert "queue" not in shown()
    assert shown(queue_position=3, running_ahead=2)["queue"] == "3rd (2 running ahead)"
    assert shown(queue_position=1, running_ahead=0)["queue"] == "1st (0 running ahead)"
    assert shown(queue_position=12, running_ahead=1)["queue"] == "12th (1 running ahead)"
    assert shown(queue_position=22, running_ahead=4)["queue"] == "22nd (4 running ahead)"
    assert "queue" not in shown(status="running", queue_position=None, running_ahead=None)
    assert shown(priority=5)["priority"] == "5"


def test_why_training_stopped_what_it_trained_on_and_its_test_score_are_shown() -> None:
    assert "stopped" not in shown() and "dataset" not in shown() and "test" not in shown()
    assert shown(stop_reason="completed", best_epoch=2)["stopped"] == "completed"
    assert shown(stop_reason="early_stopping", best_epoch=4)["stopped"] == "early_stopping (best epoch 4)"
    info = {
        "layout": "split_folders",
        "classes": ["a", "b", "c"],
        "train_samples": 60,
        "val_samples": 15,
        "test_samples": 12,
        "skipped_files": ["train/a/bad.jpg"],
        "skipped_count": 1,
    }
    assert shown(dataset_info=info)["dataset"] == (
        "3 classes, 60 train / 15 val / 12 test (split_folders), 1 unreadable images skipped"
    )
    warm = {"job": "f" * 32, "epoch": 3, "loaded": 8, "new": ["fc.weight", "fc.bias"]}
    assert (
        shown(warm_start=warm)["from"]
        == f"job {'f' * 32} epoch 3 (8 tensors loaded, new: fc.weight, fc.bias)"
    )
    test = {"epoch": 4, "loss": 0.25, "accuracy": 0.875, "per_class": [], "confusion_matrix": []}
    assert shown(test_metrics=test)["test"] == "accuracy 87.50%, loss 0.2500 (epoch 4)"


def test_tags_notes_sweep_best_accuracy_duration_and_disk_are_shown_when_the_job_has_them() -> None:
    bare = shown()
    assert not {"tags", "notes", "sweep", "best", "duration", "disk"} & set(bare)
    rows = shown(
        tags=["baseline", "digits"],
        notes="lr [too] high",
        sweep="s" * 32,
        best_val_accuracy=0.9731,
        best_epoch=4,
        duration_seconds=185.2,
        disk_bytes=3 * 1024 * 1024 + 512 * 1024,
    )
    assert rows["tags"] == "baseline, digits"
    assert rows["notes"] == "lr [too] high"
    assert rows["sweep"] == "s" * 32
    assert rows["best"] == "97.3% val accuracy (epoch 4)"
    assert rows["duration"] == "3m 05s"
    assert rows["disk"] == "3.5 MiB"
    assert shown(duration_seconds=42.04)["duration"] == "42.0s"
    assert shown(duration_seconds=7384.0)["duration"] == "2h 03m"
    assert shown(disk_bytes=0)["disk"] == "0 B"


def test_the_per_class_table_lists_each_class_with_its_figures() -> None:
    metrics = {
        "epoch": 3,
        "per_class": [
            {"class": "[cat]", "precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 4},
            {"class": "dog", "precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 2},
        ],
    }
    console = Console(width=120, record=True)
    console.print(evaluation_table(metrics, "test"))
    lines = [line.split() for line in console.export_text().splitlines()]
    assert lines[0] == ["test", "(epoch", "3)"]
    assert ["[cat]", "1.000", "0.500", "0.667", "4"] in lines
    assert ["dog", "0.500", "1.000", "0.667", "2"] in lines


def test_the_jobs_table_shows_the_best_accuracy_and_a_dash_without_one() -> None:
    now = datetime(2024, 1, 2, 3, 5, 5, tzinfo=UTC)
    console = Console(width=120, record=True)
    jobs = [{**JOB, "id": "a" * 32, "best_val_accuracy": 0.9731}, {**JOB, "id": "b" * 32}]
    console.print(jobs_table(jobs, now))
    header, first, second = console.export_text().splitlines()
    assert header.split() == ["ID", "NAME", "STATUS", "PROGRESS", "EPOCH", "BEST", "AGE"]
    assert first.split()[5] == "97.3%"
    assert second.split()[5] == "-"


def test_the_jobs_table_shows_ids_by_a_prefix_every_command_takes_and_whole_when_wide() -> None:
    now = datetime(2024, 1, 2, 3, 5, 5, tzinfo=UTC)
    short = Console(width=80, record=True)
    short.print(jobs_table([JOB], now))
    row = short.export_text().splitlines()[1]
    assert row.split()[:2] == ["0123456789ab", "wide"]
    whole = Console(width=120, record=True)
    whole.print(jobs_table([JOB], now, wide=True))
    assert whole.export_text().splitlines()[1].split()[0] == JOB["id"]


def test_a_wide_jobs_table_widens_the_console_to_keep_long_names_whole() -> None:
    name = "x" * 100
    now = datetime(2024, 1, 2, 3, 5, 5, tzinfo=UTC)
    narrow = Console(width=80, record=True)
    narrow.print(jobs_table([{**JOB, "name": name}], now))
    assert name not in narrow.export_text()
    wide = Console(width=80, record=True)
    table = jobs_table([{**JOB, "name": name}], now, wide=True)
    fit_width(wide, table)
    wide.print(table)
    assert name in wide.export_text()


def test_the_jobs_table_shows_tags_compact_next_to_the_age_only_when_a_job_has_some() -> None:
    now = datetime(2024, 1, 2, 3, 5, 5, tzinfo=UTC)
    untagged = Console(width=120, record=True)
    untagged.print(jobs_table([{**JOB, "tags": []}], now))
    assert "TAGS" not in untagged.export_text()
    console = Console(width=120, record=True)
    jobs = [{**JOB, "id": "a" * 32, "tags": ["baseline", "digits"]}, {**JOB, "id": "b" * 32, "tags": []}]
    console.print(jobs_table(jobs, now))
    header, first, second = console.export_text().splitlines()
    assert header.split() == ["ID", "NAME", "STATUS", "PROGRESS", "EPOCH", "BEST", "TAGS", "AGE"]
    assert first.split()[6:] == ["baseline,digits", "1m"]
    assert second.split()[6:] == ["-", "1m"]
