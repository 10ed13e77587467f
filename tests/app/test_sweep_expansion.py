"""app.sweeps: a sweep body expanded into job requests (pure: no database)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from app.sweeps import MAX_SWEEP_JOBS, InvalidCombination, SweepCreate, expand, job_name


def sweep(**fields: Any) -> SweepCreate:
    return SweepCreate.model_validate({"name": "s", "base": {"hyperparameters": {"epochs": 2}}, **fields})


def test_a_grid_has_every_combination_of_the_listed_values() -> None:
    grid = sweep(
        method="grid",
        parameters={
            "learning_rate": {"values": [0.1, 0.01, 0.001]},
            "batch_size": {"values": [16, 32]},
            "optimizer": {"value": "sgd"},
        },
    )
    trials = expand(grid, seed=0)
    assert len(trials) == 6
    pairs = [(t.job.hyperparameters.learning_rate, t.job.hyperparameters.batch_size) for t in trials]
    assert pairs == [(0.1, 16), (0.1, 32), (0.01, 16), (0.01, 32), (0.001, 16), (0.001, 32)]
    assert {t.job.hyperparameters.optimizer for t in trials} == {"sgd"}
    assert {t.job.hyperparameters.epochs for t in trials} == {2}  # from the base job
    assert trials[2].job.name == "s #3 lr=0.01 bs=16 optimizer=sgd"


def test_a_grid_takes_lists_not_ranges() -> None:
    with pytest.raises(ValidationError, match="a grid sweep takes values, not ranges"):
        sweep(method="grid", parameters={"learning_rate": {"min": 0.001, "max": 0.1}})


def test_a_grid_larger_than_the_cap_is_refused_before_it_is_expanded() -> None:
    values = {"values": list(range(1, 33))}
    with pytest.raises(
        ValidationError, match=f"32768 combinations; a sweep may have at most {MAX_SWEEP_JOBS}"
    ):
        sweep(method="grid", parameters={"epochs": values, "batch_size": values, "fake_num_classes": values})


def test_parameters_must_be_hyperparameters() -> None:
    with pytest.raises(ValidationError, match="lr are not hyperparameters"):
        sweep(method="grid", parameters={"lr": {"values": [0.1]}})


def test_a_random_sweep_with_a_seed_draws_the_same_jobs_again() -> None:
    space = {
        "learning_rate": {"min": 1e-4, "max": 1e-1, "distribution": "log_uniform"},
        "batch_size": {"values": [16, 32, 64]},
        "epochs": {"min": 1, "max": 5},
        "momentum": {"min": 0.5, "max": 0.99},
    }

    def drawn(seed: int) -> list[dict[str, Any]]:
        return [t.assignment for t in expand(sweep(method="random", parameters=space, trials=20), seed=seed)]

    first, again, other = drawn(7), drawn(7), drawn(8)
    assert first == again
    assert first != other
    assert len(first) == 20
    assert {a["batch_size"] for a in first} <= {16, 32, 64}
    assert all(isinstance(a["epochs"], int) and 1 <= a["epochs"] <= 5 for a in first)  # integer bounds
    assert all(0.5 <= a["momentum"] <= 0.99 for a in first)


def test_log_uniform_samples_stay_in_range_and_spread_evenly_in_log_space() -> None:
    space = {"weight_decay": {"min": 1e-5, "max": 1e-1, "distribution": "log_uniform"}}
    trials = expand(sweep(method="random", parameters=space, trials=400, seed=1), seed=1)
    values = [t.job.hyperparameters.weight_decay for t in trials]
    assert all(1e-5 <= v <= 1e-1 for v in values)
    # Four decades, a quarter of the samples each (a uniform draw would put ~90% in the last one).
    per_decade = [sum(1 for v in values if 10 ** (e - 1) < v <= 10**e) for e in (-4, -3, -2, -1)]
    assert all(60 <= count <= 140 for count in per_decade), per_decade
    mean_log = sum(math.log10(v) for v in values) / len(values)
    assert -3.3 < mean_log < -2.7


def test_a_random_sweep_needs_trials() -> None:
    with pytest.raises(ValidationError, match="needs trials"):
        sweep(method="random", parameters={"learning_rate": {"values": [0.1]}})


def test_a_combination_that_is_not_a_valid_job_is_named_with_pydantics_message() -> None:
    bad = sweep(method="grid", parameters={"learning_rate": {"values": [0.1, 20.0]}})
    with pytest.raises(InvalidCombination) as info:
        expand(bad, seed=0)
    assert info.value.number == 2
    assert info.value.assignment == {"learning_rate": 20.0}
    assert "combination #2 (lr=20)" in str(info.value)
    assert "hyperparameters.learning_rate: Input should be less than or equal to 10" in str(info.value)


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ({"min": 0.0, "max": 1.0, "distribution": "log_uniform"}, "needs min > 0"),
        ({"min": 2.0, "max": 1.0}, "must not be above max"),
        ({"min": 1.0}, "needs both min and max"),
        ({"values": [1], "min": 1, "max": 2}, "exactly one of"),
        ({"values": [1, 2], "distribution": "uniform"}, "min/max range only"),
        ({"min": 0, "max": 10**13}, "less than or equal to 1000000000000"),
    ],
)
def test_a_bad_search_space_says_what_to_change(parameter: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        sweep(method="random", trials=2, parameters={"momentum": parameter})


def test_job_names_fit_the_name_column() -> None:
    name = job_name("x" * 100, 1000, {"dataset_path": "y" * 300})
    assert len(name) == 200
    assert name.startswith("x" * 100 + " #1000 dataset_path=yyy")


def test_the_readmes_example_sweep_expands_into_its_trials() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("\n## Sweeps\n", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    body = SweepCreate.model_validate(yaml.safe_load(example))
    trials = expand(body, seed=body.seed or 0)
    assert len(trials) == body.trials == 20
    assert {t.job.hyperparameters.optimizer for t in trials} == {"adamw"}


def test_the_api_imports_optuna_only_when_a_random_sweep_is_expanded() -> None:
    check = (
        "import sys, app.main, app.sweeps, app.routes.sweeps\n"
        "assert 'optuna' not in sys.modules, 'the API imported optuna at start-up'\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True)
