"""A sweep's body (POST /sweeps) and its expansion into job requests: pure, no database.

The shape follows Weights & Biases sweeps: `method` (grid or random) and `parameters`, one entry
per hyperparameter, each `{"values": [...]}` (a list to choose from), `{"value": x}` (fixed), or
`{"min": a, "max": b, "distribution": ...}` (a range, random only). Every combination becomes
`base` (a POST /jobs body) with those hyperparameters set, validated as a JobCreate.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.hyperparameters import Hyperparameters
from app.models import MAX_NAME_CHARS, JobCreate

MAX_SWEEP_JOBS = 1000
MAX_VALUES = 1000
MAX_SEED = 2**32 - 1
MAX_BOUND = 1e12  # a range's min and max: beyond every hyperparameter's, within what samplers handle

Scalar = bool | int | float | str | None
Distribution = Literal["uniform", "int_uniform", "log_uniform", "log_uniform_values"]
# Short names in job names, for the hyperparameters swept most.
SHORT_NAMES = {"learning_rate": "lr", "batch_size": "bs", "weight_decay": "wd", "momentum": "mom"}


class Parameter(BaseModel):
    """One hyperparameter's search space: `values`, `value`, or `min`/`max` with a distribution."""

    model_config = ConfigDict(extra="forbid")

    values: list[Scalar] | None = Field(default=None, min_length=1, max_length=MAX_VALUES)
    value: Scalar = None
    # int | float keeps integers as written: integer bounds sample integers (W&B's rule).
    min: int | float | None = Field(default=None, ge=-MAX_BOUND, le=MAX_BOUND, allow_inf_nan=False)
    max: int | float | None = Field(default=None, ge=-MAX_BOUND, le=MAX_BOUND, allow_inf_nan=False)
    distribution: Distribution | None = Field(
        default=None,
        description="For min/max: uniform (default for floats), int_uniform (default when both are "
        "integers), log_uniform or log_uniform_values (uniform in log space; min and max are the values "
        "themselves, not their logarithms).",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [
            self.values is not None,
            "value" in self.model_fields_set,
            self.min is not None or self.max is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "give exactly one of: values (a list), value (one value), or min and max (a range)"
            )
        if kinds[2]:
            if self.min is None or self.max is None:
                raise ValueError("a range needs both min and max")
            if self.min > self.max:
                raise ValueError(f"min ({self.min}) must not be above max ({self.max})")
            if self.resolved_distribution in ("log_uniform", "log_uniform_values") and self.min <= 0:
                raise ValueError("a log-uniform range needs min > 0")
            if self.resolved_distribution == "int_uniform" and not (
                float(self.min).is_integer() and float(self.max).is_integer()
            ):
                raise ValueError("int_uniform needs integer min and max")
        elif self.distribution is not None:
            raise ValueError("distribution applies to a min/max range only")
        return self

    @property
    def is_range(self) -> bool:
        return self.min is not None

    @property
    def resolved_distribution(self) -> Distribution:
        if self.distribution is not None:
            return self.distribution
        return "int_uniform" if isinstance(self.min, int) and isinstance(self.max, int) else "uniform"

    @property
    def choices(self) -> list[Scalar]:
        return list(self.values) if self.values is not None else [self.value]


class SweepCreate(BaseModel):
    """POST /sweeps body."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="sweep", min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    method: Literal["grid", "random"]
    base: dict[str, Any] = Field(
        default_factory=dict,
        description="A POST /jobs body every job starts from (hyperparameters, limits, resources).",
    )
    parameters: dict[str, Parameter] = Field(min_length=1, description="The hyperparameters that vary.")
    trials: int | None = Field(default=None, ge=1, le=MAX_SWEEP_JOBS, description="random: how many jobs.")
    seed: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEED,
        description="random: the sampler's seed (drawn and stored when absent).",
    )
    max_parallel: int | None = Field(
        default=None, ge=1, le=MAX_SWEEP_JOBS, description="At most this many of its jobs run at once."
    )

    @model_validator(mode="after")
    def _fits_method(self) -> Self:
        unknown = sorted(set(self.parameters) - set(Hyperparameters.model_fields))
        if unknown:
            raise ValueError(f"parameters: {', '.join(unknown)} are not hyperparameters (see GET /docs)")
        if self.method == "grid":
            ranges = sorted(name for name, p in self.parameters.items() if p.is_range)
            if ranges:
                raise ValueError(
                    f"a grid sweep takes values, not ranges: give {', '.join(ranges)} a list of values"
                )
            if self.trials is not None or self.seed is not None:
                raise ValueError("trials and seed apply to random sweeps only")
            if (count := grid_size(self.parameters)) > MAX_SWEEP_JOBS:
                raise ValueError(
                    f"the grid has {count} combinations; a sweep may have at most {MAX_SWEEP_JOBS}"
                )
        elif self.trials is None:
            raise ValueError("a random sweep needs trials (how many jobs to sample)")
        return self


@dataclass(frozen=True)
class Trial:
    """One job of a sweep: its number (1-based), the hyperparameters it sets, and its request."""

    number: int
    assignment: dict[str, Any]
    job: JobCreate


class InvalidCombination(ValueError):
    """A combination that is not a valid job: which one, and pydantic's errors."""

    def __init__(self, number: int, assignment: Mapping[str, Any], error: ValidationError) -> None:
        self.number = number
        self.assignment = dict(assignment)
        self.errors = error.errors(include_url=False, include_context=False)
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in self.errors)
        super().__init__(f"combination #{number} ({describe(assignment)}) is not a valid job: {problems}")


def grid_size(parameters: Mapping[str, Parameter]) -> int:
    return math.prod(len(p.choices) for p in parameters.values())


def grid(parameters: Mapping[str, Parameter]) -> list[dict[str, Any]]:
    """Every combination, the last parameter varying fastest (as itertools.product)."""
    names = list(parameters)
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(parameters[n].choices for n in names))
    ]


def sample(parameters: Mapping[str, Parameter], *, trials: int, seed: int) -> list[dict[str, Any]]:
    """`trials` draws from Optuna's RandomSampler(seed) in an in-memory study: the same seed and
    space give the same draws. Imported here, so the API's start-up does not pay for it."""
    import optuna
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    for name, p in parameters.items():
        if not p.is_range:
            if len(p.choices) == 1:
                fixed[name] = p.choices[0]
            else:
                # By index: Optuna's categories must be hashable and distinct; ours may repeat.
                distributions[name] = CategoricalDistribution(list(range(len(p.choices))))
            continue
        assert p.min is not None and p.max is not None
        match p.resolved_distribution:
            case "int_uniform":
                distributions[name] = IntDistribution(int(p.min), int(p.max))
            case "uniform":
                distributions[name] = FloatDistribution(p.min, p.max)
            case "log_uniform" | "log_uniform_values":
                distributions[name] = FloatDistribution(p.min, p.max, log=True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    drawn = []
    for _ in range(trials):
        params = study.ask(distributions).params if distributions else {}
        assignment: dict[str, Any] = {}
        for name, p in parameters.items():
            if name in fixed:
                assignment[name] = fixed[name]
            elif p.is_range:
                assignment[name] = params[name]
            else:
                assignment[name] = p.choices[params[name]]
        drawn.append(assignment)
    return drawn


def expand(sweep: SweepCreate, *, seed: int) -> list[Trial]:
    """Every job of the sweep, validated in full; InvalidCombination names the first that is not
    a valid job. `seed` is the sweep's (random only: drawn by the caller when the body has none)."""
    if sweep.method == "grid":
        assignments = grid(sweep.parameters)
    else:
        assert sweep.trials is not None
        assignments = sample(sweep.parameters, trials=sweep.trials, seed=seed)
    base_hp = sweep.base.get("hyperparameters") or {}
    trials = []
    for number, assignment in enumerate(assignments, start=1):
        body = dict(sweep.base)
        body["hyperparameters"] = {**base_hp, **assignment} if isinstance(base_hp, dict) else base_hp
        body["name"] = job_name(sweep.name, number, assignment)
        try:
            job = JobCreate.model_validate(body)
        except ValidationError as exc:
            raise InvalidCombination(number, assignment, exc) from exc
        trials.append(Trial(number=number, assignment=assignment, job=job))
    return trials


def new_seed() -> int:
    return random.SystemRandom().randint(0, MAX_SEED)


def job_name(sweep_name: str, number: int, assignment: Mapping[str, Any]) -> str:
    """e.g. "lr-search #3 lr=0.01 bs=32", cut to a job name's length."""
    return f"{sweep_name} #{number} {describe(assignment)}".strip()[:MAX_NAME_CHARS]


def describe(assignment: Mapping[str, Any]) -> str:
    return " ".join(f"{SHORT_NAMES.get(name, name)}={_short(value)}" for name, value in assignment.items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
