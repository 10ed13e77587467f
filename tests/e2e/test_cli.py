"""The `trainq` command (and the client under it) against a live API with a real worker, and one with API keys and no worker."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Service, running_service
from tests.support.cli import failed_with, trainq
from trainq import Client
from trainq.job_details import ordinal

KEY = "cli-test-key-0123456789abcdef"
DIGITS: dict[str, Any] = {"dataset": "digits", "epochs": 3, "batch_size": 64}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Keys required, and no worker: jobs stay queued."""
    state_dir = tmp_path_factory.mktemp("keyed")
    with running_service(state_dir, api_key=KEY, TRAINQ_API_KEYS=f"alice:{KEY}") as running:
        yield running


def best_checkpoint(job: dict) -> dict:
    return next(entry for entry in job["checkpoints"] if entry["is_best"])


def test_a_job_submitted_with_flags_is_watched_until_it_succeeds(live: Service) -> None:
    flags = "--name flags --dataset digits --epochs 2 --batch-size 32 --lr 0.01 --set seed=7"
    submitted = trainq(live, "submit", *flags.split())
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip()
    assert submitted.stdout == f"{job_id}\n"
    job = live.job(job_id)
    assert job["name"] == "flags"
    chosen = {key: job["hyperparameters"][key] for key in ("epochs", "batch_size", "learning_rate", "seed")}
    assert chosen == {"epochs": 2, "batch_size": 32, "learning_rate": 0.01, "seed": 7}

    watched = trainq(live, "watch", job_id)
    assert watched.exit_code == 0, watched.output
    lines = watched.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["epoch", "train", "loss"])
    assert [line.split()[0] for line in lines[header + 1 : header + 3]] == ["1", "2"]
    assert f"{job_id} succeeded after 2 epochs" in watched.stdout


def test_every_submit_flag_reaches_its_hyperparameter(keyed: Service) -> None:
    expected = {
        "dataset": "imagefolder",
        "dataset_path": "cats",
        "model": "mlp",
        "epochs": 4,
        "batch_size": 8,
        "learning_rate": 0.05,
        "optimizer": "sgd",
        "lr_scheduler": "cosine",
        "weight_decay": 0.01,
        "early_stopping_patience": 3,
        "image_size": 16,
        "augment": "standard",
        "amp": "bf16",
        "device": "cpu",
        "seed": 9,
    }
    # Each flag is named like its field.
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in expected.items()]
    limits = ["--max-attempts=5", "--max-runtime-seconds=60", "--dry-run"]
    result = trainq(keyed, "submit", *flags, *limits, api_key=KEY)
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.stdout)
    assert {key: resolved["hyperparameters"][key] for key in expected} == expected
    assert (resolved["max_attempts"], resolved["max_runtime_seconds"]) == (5, 60)
    assert keyed.http.get("/jobs").json()["items"] == []


@pytest.mark.parametrize("flag", ["--learning-rate", "--lr"])
def test_learning_rate_and_its_short_alias_set_learning_rate(keyed: Service, flag: str) -> None:
    result = trainq(keyed, "submit", flag, "0.025", "--max-runtime", "30", "--dry-run", api_key=KEY)
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.stdout)
    assert (resolved["hyperparameters"]["learning_rate"], resolved["max_runtime_seconds"]) == (0.025, 30)


def test_a_choice_the_server_does_not_offer_is_a_usage_error_listing_the_choices(keyed: Service) -> None:
    result = trainq(keyed, "submit", "--model", "vgg", api_key=KEY)
    assert result.exit_code == 2
    assert "'vgg' is not one of 'mlp', 'small_cnn'" in result.output


def test_a_yaml_job_file_is_submitted_with_flags_taking_precedence(keyed: Service, tmp_path: Path) -> None:
    body = tmp_path / "job.yaml"
    body.write_text(
        "name: from-yaml\nmax_attempts: 2\nhyperparameters:\n  dataset: digits\n  epochs: 5\n  batch_size: 16\n"
    )
    result = trainq(keyed, "submit", "-f", str(body), "--epochs", "1", api_key=KEY)
    assert result.exit_code == 0, result.output
    job = keyed.job(result.stdout.strip())
    assert (job["name"], job["max_attempts"], job["status"]) == ("from-yaml", 2, "queued")
    assert (job["hyperparameters"]["epochs"], job["hyperparameters"]["batch_size"]) == (1, 16)

    hyperparameters_only = tmp_path / "hyperparameters.yml"
    hyperparameters_only.write_text("model: mlp\nepochs: 2\n")
    result = trainq(keyed, "submit", "--file", str(hyperparameters_only), "--name", "bare", api_key=KEY)
    assert result.exit_code == 0, result.output
    job = keyed.job(result.stdout.strip())
    assert (job["name"], job["hyperparameters"]["model"], job["hyperparameters"]["epochs"]) == (
        "bare",
        "mlp",
        2,
    )


def shown_row(shown: str, label: str) -> str:
    """The value of one row of `trainq show`'s details."""
    return next(
        line.split(maxsplit=1)[1].strip() for line in shown.splitlines() if line.split()[:1] == [label]
    )


def test_resources_given_on_the_command_line_are_stored_and_shown_with_why_the_job_waits(
    keyed: Service,
) -> None:
    flags = ["--dataset", "digits", "--epochs", "1", "--device", "cpu", "--devices", "2", "--label", "fast"]
    submitted = trainq(keyed, "submit", *flags, "--priority", "4", api_key=KEY)
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip()
    job = keyed.job(job_id)
    assert job["resources"] == {"devices": 2, "labels": ["fast"]}
    assert (job["status"], job["waiting_reason"]) == ("queued", "no worker is running")
    assert (job["priority"], job["running_ahead"]) == (4, 0)

    shown = trainq(keyed, "show", job_id, api_key=KEY)
    assert shown.exit_code == 0, shown.output
    assert shown_row(shown.stdout, "resources") == "2 devices (cpu), labels [fast]"
    assert shown_row(shown.stdout, "waiting") == "no worker is running"
    assert shown_row(shown.stdout, "priority") == "4"
    assert shown_row(shown.stdout, "queue") == f"{ordinal(job['queue_position'])} (0 running ahead)"


def test_a_job_files_resources_are_sent_with_devices_replaced_and_labels_added_by_flags(
    keyed: Service, tmp_path: Path
) -> None:
    body = tmp_path / "job.yaml"
    body.write_text("resources:\n  devices: 4\n  labels: [a100]\nhyperparameters:\n  epochs: 1\n")
    as_written = trainq(keyed, "submit", "-f", str(body), "--dry-run", api_key=KEY)
    assert as_written.exit_code == 0, as_written.output
    assert json.loads(as_written.stdout)["resources"] == {"devices": 4, "labels": ["a100"]}

    submitted = trainq(keyed, "submit", "-f", str(body), "--devices", "2", "--label", "fast", api_key=KEY)
    assert submitted.exit_code == 0, submitted.output
    assert keyed.job(submitted.stdout.strip())["resources"] == {"devices": 2, "labels": ["a100", "fast"]}


def test_list_shows_jobs_as_a_table_and_as_json(live: Service, finished_job: dict) -> None:
    table = trainq(live, "list")
    assert table.exit_code == 0, table.output
    # By the prefix that every command takes, as `trainq show` below does.
    row = next(line for line in table.stdout.splitlines() if line.startswith(finished_job["id"][:12]))
    assert trainq(live, "show", row.split()[0]).exit_code == 0
    assert row.split()[2:5] == ["succeeded", "100%", "3/3"]

    succeeded = json.loads(trainq(live, "list", "--json", "--status", "succeeded").stdout)
    assert finished_job["id"] in [job["id"] for job in succeeded]
    assert {job["status"] for job in succeeded} == {"succeeded"}
    failed = json.loads(trainq(live, "list", "--json", "--status", "failed").stdout)
    assert finished_job["id"] not in [job["id"] for job in failed]
    assert len(json.loads(trainq(live, "list", "--json", "--limit", "1").stdout)) == 1


def test_list_wide_shows_a_long_name_in_full(keyed: Service) -> None:
    name = "resnet18-on-cifar10-with-cosine-schedule-and-standard-augmentation-run-3"
    job_id = keyed.submit(name, epochs=1)
    narrow = trainq(keyed, "list", api_key=KEY)
    assert narrow.exit_code == 0, narrow.output
    assert name not in narrow.stdout
    assert all(len(line) <= 80 for line in narrow.stdout.splitlines())
    wide = trainq(keyed, "list", "--wide", api_key=KEY)
    assert wide.exit_code == 0, wide.output
    row = next(line for line in wide.stdout.splitlines() if line.startswith(job_id))
    assert row.split()[1:3] == [name, "queued"]
    # No epoch has been recorded: no best accuracy yet.
    assert wide.stdout.splitlines()[0].split()[5] == "BEST"
    assert row.split()[5] == "-"


def test_compare_puts_jobs_side_by_side_with_the_differing_hyperparameters_first(keyed: Service) -> None:
    first = keyed.submit("compare-a", epochs=2, learning_rate=0.01)
    second = keyed.submit("compare-b", epochs=2, learning_rate=0.1, optimizer="sgd")
    result = trainq(keyed, "compare", first, second, api_key=KEY)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["FIELD", first[:8], second[:8]]
    rows = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in lines[1:] if line}
    assert rows["name"].split() == ["*", "name", "compare-a", "compare-b"]
    assert rows["learning_rate"].split() == ["*", "learning_rate", "0.01", "0.1"]
    assert rows["optimizer"].split() == ["*", "optimizer", "adam", "sgd"]
    assert rows["status"].split() == ["status", "queued", "queued"]
    assert "epochs" not in rows
    assert list(rows).index("learning_rate") > list(rows).index("duration")

    everything = trainq(keyed, "compare", "--all", first, second, api_key=KEY)
    assert everything.exit_code == 0, everything.output
    listed = [line.split() for line in everything.stdout.splitlines()]
    assert ["epochs", "2", "2"] in listed
    assert listed.index(["epochs", "2", "2"]) > listed.index(["*", "optimizer", "adam", "sgd"])

    as_json = json.loads(trainq(keyed, "compare", "--json", first, second, api_key=KEY).stdout)
    assert {"field": "optimizer", "values": ["adam", "sgd"], "differs": True} in as_json["rows"]
    assert trainq(keyed, "compare", first, api_key=KEY).exit_code == 2


def test_show_prints_details_epochs_and_checkpoints(live: Service, finished_job: dict) -> None:
    shown = trainq(live, "show", finished_job["id"])
    assert shown.exit_code == 0, shown.output
    assert "digits-cli" in shown.stdout
    epoch_table = shown.stdout.split("EPOCH  TRAIN LOSS")[1].splitlines()
    assert [line.split()[0] for line in epoch_table[1:4]] == ["1", "2", "3"]
    assert best_checkpoint(finished_job)["sha256"][:16] in shown.stdout
    assert json.loads(trainq(live, "show", finished_job["id"], "--json").stdout) == live.job(
        finished_job["id"]
    )


def test_watch_exits_1_with_the_reason_when_the_job_fails(live: Service) -> None:
    job_id = live.submit("no-mnist", dataset="mnist", epochs=1)
    result = trainq(live, "watch", job_id)
    assert result.exit_code == 1, result.output
    assert f"{job_id} failed: data_error: " in result.stderr
    assert "MNIST" in result.stderr


def test_cancel_ends_a_queued_job_and_watch_then_exits_1(keyed: Service) -> None:
    job_id = keyed.submit("to-cancel", **DIGITS)
    cancelled = trainq(keyed, "cancel", job_id, api_key=KEY)
    assert (cancelled.exit_code, cancelled.stdout) == (0, f"{job_id} cancelled\n")
    assert keyed.job(job_id)["status"] == "cancelled"
    watched = trainq(keyed, "watch", job_id, api_key=KEY)
    assert watched.exit_code == 1
    assert f"{job_id} cancelled" in watched.stderr
    failed_with(trainq(keyed, "cancel", job_id, api_key=KEY), "the job already ended (cancelled)")


def test_the_client_reads_metrics_and_logs_and_downloads_with_progress(
    live: Service, finished_job: dict, tmp_path: Path
) -> None:
    job_id = finished_job["id"]
    with Client(str(live.http.base_url)) as client:
        assert [row["epoch"] for row in client.metrics(job_id, after_epoch=2)] == [3]
        assert client.logs(job_id)
        assert len(client.logs(job_id, tail=2).splitlines()) == 2
        latest = client.checkpoint(job_id, "latest")
        assert client.checkpoint(job_id, latest["epoch"]) == latest

        (tmp_path / "model.pt.part").write_bytes(b"stale bytes from some other download")
        seen: list[tuple[int, int]] = []
        result = client.download_checkpoint(
            job_id, "latest", tmp_path / "model.pt", progress=lambda *at: seen.append(at), resume=False
        )
    assert (result.path, result.epoch, result.resumed_from_bytes) == (tmp_path / "model.pt", 3, 0)
    assert result.transferred_bytes == result.size_bytes == latest["size_bytes"]
    assert hashlib.sha256(result.path.read_bytes()).hexdigest() == result.sha256 == latest["sha256"]
    assert seen[0] == (0, latest["size_bytes"]) and seen[-1] == (latest["size_bytes"], latest["size_bytes"])
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    printed = trainq(live, "logs", job_id, "--tail", "1")
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == live.http.get(f"/jobs/{job_id}/logs", params={"tail": 1}).text


def test_the_installed_trainq_command_runs(live: Service, finished_job: dict) -> None:
    executable = Path(sys.executable).with_name("trainq")
    completed = subprocess.run(
        [str(executable), "--url", str(live.http.base_url), "show", "--json", finished_job["id"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["id"] == finished_job["id"]
