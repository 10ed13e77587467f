from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from app.fake_data import MAX_FAKE_DATA_BYTES
from app.hyperparameters import Hyperparameters


def errors_for(**fields: Any) -> str:
    with pytest.raises(ValidationError) as info:
        Hyperparameters.model_validate(fields)
    return str(info.value)


def test_defaults_resolve_to_a_digits_small_cnn_job() -> None:
    hp = Hyperparameters()
    assert hp.dataset == "digits"
    assert hp.model == "small_cnn"
    assert hp.epochs == 10
    assert hp.monitor == "val_loss"
    assert hp.early_stopping_patience is None


def test_unknown_keys_are_rejected_by_name() -> None:
    assert "epochz" in errors_for(epochz=3)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 1001),
        ("epochs", 10**30),
        ("batch_size", 0),
        ("batch_size", 100_000),
        ("learning_rate", 0),
        ("learning_rate", -1),
        ("momentum", 1.0),
        ("val_fraction", 0),
        ("val_fraction", 1),
        ("label_smoothing", 1.0),
        ("num_workers", 1000),
        ("image_size", 4),
        ("image_size", 100_000),
        ("seed", -1),
        ("checkpoint_every", 0),
        ("early_stopping_patience", 0),
        ("grad_clip_norm", 0),
        ("fake_samples", 10**9),
    ],
)
def test_out_of_range_values_are_rejected_naming_the_field(field: str, value: Any) -> None:
    assert field in errors_for(**{field: value})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_rejected(value: float) -> None:
    assert "learning_rate" in errors_for(learning_rate=value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dataset", "imagenet"),
        ("model", "vit_h_14"),
        ("optimizer", "lbfgs"),
        ("amp", "fp8"),
        ("device", "tpu"),
    ],
)
def test_unknown_choices_are_rejected(field: str, value: str) -> None:
    assert field in errors_for(**{field: value})


def test_wrong_types_are_rejected() -> None:
    assert "epochs" in errors_for(epochs="ten")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dataset": "imagefolder"}, "needs dataset_path"),
        ({"dataset_path": "cats"}, "only used with dataset 'imagefolder'"),
        ({"lr_scheduler": "step"}, "needs step_size"),
        ({"step_size": 3}, "only used with lr_scheduler 'step'"),
        ({"pretrained": True, "model": "small_cnn"}, "pretrained weights exist only for"),
        ({"amp": "fp16", "device": "cpu"}, "use amp 'bf16' on the CPU"),
        ({"download": True}, "download applies only to"),
        ({"min_learning_rate": 0.1, "learning_rate": 0.01}, "must not exceed learning_rate"),
        (
            {"dataset": "fake", "fake_samples": 100_000, "image_size": 512},
            "lower fake_samples to at most",
        ),
        ({"model": "mlp", "image_size": 512}, "use a CNN for larger images"),
        (
            {"model": "mlp", "dataset": "imagefolder", "dataset_path": "x"},
            "model 'mlp' on imagefolder needs image_size",
        ),
    ],
)
def test_cross_field_rules_say_what_to_change(fields: dict[str, Any], message: str) -> None:
    assert message in errors_for(**fields)


def test_a_fake_dataset_that_would_peak_far_past_the_limit_is_refused() -> None:
    # 2.1 GB of uint8 images, under the old bound on the images' bytes, but 16 GB while generated.
    message = errors_for(dataset="fake", fake_samples=100_000, fake_channels=1, image_size=146)

    assert f"over the {MAX_FAKE_DATA_BYTES // 1024**2} MiB limit" in message
    assert "lower fake_samples to at most" in message


@pytest.mark.parametrize("batch_size", [1, 64, 4096])
def test_the_most_fake_samples_the_message_names_fit_and_one_more_does_not(batch_size: int) -> None:
    shape: dict[str, Any] = {
        "dataset": "fake",
        "fake_channels": 3,
        "image_size": 256,
        "batch_size": batch_size,
    }
    message = errors_for(**shape, fake_samples=100_000)
    most = int(message.split("at most ")[1].split()[0])

    Hyperparameters(**shape, fake_samples=most)
    assert "lower fake_samples" in errors_for(**shape, fake_samples=most + 1)


def test_a_larger_batch_of_fake_data_counts_against_the_limit() -> None:
    fits = {"dataset": "fake", "fake_samples": 8000, "image_size": 256}

    Hyperparameters(**fits, batch_size=64)
    assert "lower fake_samples" in errors_for(**fits, batch_size=2048)


@pytest.mark.parametrize(
    "path",
    ["../secrets", "a/../../b", "/etc", "a\x00b", "a\\..\\b", "", "x" * 300, "..%2F..%2Fetc", "%2e%2e/x"],
)
def test_dataset_paths_that_could_leave_the_data_dir_are_rejected(path: str) -> None:
    assert "dataset_path" in errors_for(dataset="imagefolder", dataset_path=path)


def test_a_valid_imagefolder_path_is_normalised() -> None:
    hp = Hyperparameters(dataset="imagefolder", dataset_path="pets/./v1/")
    assert hp.dataset_path == "pets/v1"


def test_a_full_configuration_round_trips_through_json() -> None:
    hp = Hyperparameters(
        model="resnet18",
        optimizer="sgd",
        lr_scheduler="step",
        step_size=2,
        early_stopping_patience=3,
        monitor="val_accuracy",
        amp="bf16",
    )
    assert Hyperparameters.model_validate(hp.model_dump(mode="json")) == hp


def test_integral_floats_count_as_integers_as_json_schema_says() -> None:
    assert Hyperparameters.model_validate({"epochs": 12.0}).epochs == 12


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", True),
        ("epochs", "10"),
        ("learning_rate", "0.1"),
        ("fake_channels", True),
        ("download", "true"),
        ("pretrained", 1),
    ],
)
def test_strings_and_booleans_are_not_numbers_and_numbers_are_not_booleans(field: str, value: Any) -> None:
    assert field in errors_for(**{field: value})
