"""GET /jobs's filters: the query parameters, and the SQL conditions they become."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exists
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from app.models import MAX_NAME_CHARS, NAME_PATTERN, Job, JobStatus, JobTag
from app.tags import MAX_TAGS, Tag


@dataclass(frozen=True)
class JobFilters:
    """What GET /jobs narrows the list to; every filter given must hold."""

    statuses: list[JobStatus] | None = None
    tags: list[str] | None = None  # all of them
    name: str | None = None  # a substring, any case
    model: str | None = None  # the `model` hyperparameter
    dataset: str | None = None  # the `dataset` hyperparameter
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    sweep: str | None = None  # a sweep's id


def job_filters(
    status: Annotated[list[JobStatus] | None, Query(description="Only jobs in these states.")] = None,
    tag: Annotated[
        list[Tag] | None, Query(max_length=MAX_TAGS, description="Only jobs with every one of these tags.")
    ] = None,
    name: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_NAME_CHARS,
            pattern=NAME_PATTERN,
            description="Names containing this, in any case.",
        ),
    ] = None,
    model: Annotated[
        str | None, Query(max_length=64, pattern=NAME_PATTERN, description="The `model` hyperparameter.")
    ] = None,
    dataset: Annotated[
        str | None, Query(max_length=64, pattern=NAME_PATTERN, description="The `dataset` hyperparameter.")
    ] = None,
    created_after: Annotated[
        datetime | None, Query(description="ISO 8601, inclusive; without a time zone, UTC.")
    ] = None,
    created_before: Annotated[
        datetime | None, Query(description="ISO 8601, exclusive; without a time zone, UTC.")
    ] = None,
    sweep: Annotated[
        str | None,
        Query(max_length=32, pattern=NAME_PATTERN, description="Only the jobs of this sweep (its id)."),
    ] = None,
) -> JobFilters:
    return JobFilters(
        statuses=status,
        tags=tag,
        name=name,
        model=model,
        dataset=dataset,
        created_after=_query_time("created_after", created_after),
        created_before=_query_time("created_before", created_before),
        sweep=sweep,
    )


def _query_time(name: str, moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    try:
        return as_utc(moment)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("query", name), "msg": str(exc), "type": "value_error"}]
        ) from exc


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; without a zone, it is taken to be UTC already."""
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 is before the first representable time
        raise ValueError("the time is out of range once converted to UTC") from exc


def conditions(filters: JobFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.statuses:
        conditions.append(col(Job.status).in_(filters.statuses))
    for tag in filters.tags or []:
        conditions.append(exists().where(col(JobTag.job_id) == col(Job.id), col(JobTag.tag) == tag))
    if filters.name is not None:
        conditions.append(col(Job.name).icontains(filters.name, autoescape=True))
    if filters.model is not None:
        conditions.append(col(Job.hyperparameters)["model"].as_string() == filters.model)
    if filters.dataset is not None:
        conditions.append(col(Job.hyperparameters)["dataset"].as_string() == filters.dataset)
    if filters.created_after is not None:
        conditions.append(col(Job.created_at) >= filters.created_after)
    if filters.created_before is not None:
        conditions.append(col(Job.created_at) < filters.created_before)
    if filters.sweep is not None:
        conditions.append(col(Job.sweep_id) == filters.sweep)
    return conditions
