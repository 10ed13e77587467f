"""The CLI's lists of allowed values are the server's."""

from __future__ import annotations

from typing import get_args

import pytest

from app.hyperparameters import Hyperparameters
from app.models import JobStatus
from app.search import JobSort
from trainq.choices import CHOICES, SORTS, STATUSES


@pytest.mark.parametrize("field", sorted(CHOICES))
def test_the_cli_offers_exactly_the_values_the_server_accepts(field: str) -> None:
    annotation = Hyperparameters.model_fields[field].annotation
    # `Augment | None` is a union of the Literal and None: the Literal's values are the choices.
    literals = [arg for arg in get_args(annotation) if get_args(arg)] or [annotation]
    accepted = tuple(value for literal in literals for value in get_args(literal))
    assert CHOICES[field] == accepted


def test_the_cli_offers_exactly_the_statuses_a_job_can_have() -> None:
    assert tuple(JobStatus) == STATUSES


def test_the_cli_offers_exactly_the_sorts_the_server_accepts() -> None:
    assert tuple(JobSort) == SORTS
