"""Every error the `trainq` command reports is one line on stderr, exit code 1, no traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Service, running_service
from tests.support.cli import failed_with, trainq
from tests.support.processes import free_port

KEY = "cli-errors-key-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Keys required, and no worker: jobs stay queued."""
    state_dir = tmp_path_factory.mktemp("keyed")
    with running_service(state_dir, api_key=KEY, TRAINQ_API_KEYS=f"alice:{KEY}") as running:
        yield running


def test_a_missing_or_wrong_key_says_to_set_trainq_api_key(keyed: Service) -> None:
    failed_with(trainq(keyed, "list"), "an API key is required", "set TRAINQ_API_KEY")
    failed_with(
        trainq(keyed, "list", api_key="wrong-key-0123456789"), "the API key is not valid", "TRAINQ_API_KEY"
    )
    assert trainq(keyed, "list", api_key=KEY).exit_code == 0
    assert trainq(keyed, "--api-key", KEY, "list").exit_code == 0


def test_unknown_jobs_and_checkpoints_are_not_found(keyed: Service) -> None:
    failed_with(trainq(keyed, "show", "0123456789abcdef", api_key=KEY), "job '0123456789abcdef' not found")
    failed_with(trainq(keyed, "watch", "0123456789abcdef", api_key=KEY), "not found")
    failed_with(trainq(keyed, "cancel", "0123456789abcdef", api_key=KEY), "not found")
    queued = keyed.submit("never-trained", epochs=1)
    failed_with(trainq(keyed, "download", queued, api_key=KEY), f"job {queued} has no checkpoint 'best'")
    failed_with(
        trainq(keyed, "download", queued, "first", api_key=KEY), "'latest', 'best' or an epoch number"
    )
    missing = "/nonexistent-folder/model.pt"
    failed_with(
        trainq(keyed, "download", queued, "-o", missing, api_key=KEY),
        "cannot save to /nonexistent-folder/model.pt: the folder /nonexistent-folder does not exist",
    )


def test_a_folder_to_download_into_is_created_only_for_a_checkpoint_that_exists(
    keyed: Service, tmp_path: Path
) -> None:
    queued = keyed.submit("never-trained", epochs=1)
    result = trainq(keyed, "download", queued, "-o", f"{tmp_path}/new/", api_key=KEY)
    failed_with(result, f"job {queued} has no checkpoint 'best'")
    assert list(tmp_path.iterdir()) == []


def test_rejected_fields_are_listed_by_their_path(keyed: Service) -> None:
    result = trainq(keyed, "submit", "--epochs", "0", "-s", "model=vgg", "--set", "colour=red", api_key=KEY)
    line = failed_with(
        result,
        "hyperparameters.epochs: Input should be greater than or equal to 1",
        "hyperparameters.model: Input should be ",
        "hyperparameters.colour: Extra inputs are not permitted",
    )
    assert "body." not in line
    assert result.stdout == ""
    unknown_status = trainq(keyed, "list", "--status", "done", api_key=KEY)
    assert unknown_status.exit_code == 2
    assert "'done' is not one of 'queued', 'running'" in unknown_status.output


def test_a_misspelled_hyperparameter_is_answered_with_the_closest_name(
    keyed: Service, tmp_path: Path
) -> None:
    failed_with(
        trainq(keyed, "submit", "--set", "learning_rat=0.1", api_key=KEY),
        "hyperparameters.learning_rat: Extra inputs are not permitted; did you mean learning_rate?",
    )
    job_file = tmp_path / "job.yaml"
    job_file.write_text("hyperparameters: {epochs: 1, wieght_decay: 0.01}\n")
    failed_with(
        trainq(keyed, "submit", "-f", str(job_file), api_key=KEY),
        "hyperparameters.wieght_decay: Extra inputs are not permitted; did you mean weight_decay?",
    )


def test_rejected_resources_are_listed_by_their_path(keyed: Service, tmp_path: Path) -> None:
    result = trainq(keyed, "submit", "--devices", "0", "--label", "A100", api_key=KEY)
    failed_with(
        result,
        "resources.devices: Input should be greater than or equal to 1",
        "resources.labels: Value error, label 'A100' is not valid",
    )
    job_file = tmp_path / "job.yaml"
    job_file.write_text("resources: {gpus: 2}\n")
    failed_with(
        trainq(keyed, "submit", "-f", str(job_file), api_key=KEY),
        "resources.gpus: Extra inputs are not permitted",
    )


def test_a_reused_idempotency_key_with_another_body_is_a_conflict(keyed: Service) -> None:
    first = trainq(keyed, "submit", "--idempotency-key", "nightly-1", "--epochs", "1", api_key=KEY)
    again = trainq(keyed, "submit", "--idempotency-key", "nightly-1", "--epochs", "1", api_key=KEY)
    assert first.exit_code == again.exit_code == 0, first.output + again.output
    assert first.stdout == again.stdout
    different = trainq(keyed, "submit", "--idempotency-key", "nightly-1", "--epochs", "2", api_key=KEY)
    failed_with(different, "this Idempotency-Key was already used with a different request body")


def test_an_unreachable_server_is_named_in_the_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    failed_with(trainq(url, "list"), f"the trainq server at {url} is not reachable")


def test_an_unusable_job_file_or_assignment_is_a_usage_error(keyed: Service, tmp_path: Path) -> None:
    jobs_before = keyed.http.get("/jobs").json()["items"]
    job_file = tmp_path / "job.yaml"
    job_file.write_text("name: typo\nhyperparameter:\n  epochs: 2\n")
    result = trainq(keyed, "submit", "-f", str(job_file), api_key=KEY)
    assert result.exit_code == 2
    assert "unknown keys hyperparameter" in result.stderr
    result = trainq(keyed, "submit", "--set", "epochs", api_key=KEY)
    assert result.exit_code == 2
    assert "write it as key=value" in result.stderr
    assert keyed.http.get("/jobs").json()["items"] == jobs_before
