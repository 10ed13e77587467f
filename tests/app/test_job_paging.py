"""Paging through GET /jobs under every sort while jobs come and go between pages: no job is shown
twice, and none that existed throughout is missed (ties and NULL keys included)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete
from sqlmodel import col

from app.db import write_session
from app.models import Job, JobStatus, JobTag
from app.search import JobSort

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_ids = itertools.count()


@dataclass(frozen=True)
class JobSpec:
    """A job to insert: few distinct values, so that sort keys tie often."""

    high_id: int  # the id's first hex digits: new jobs land anywhere in id order
    created_minute: int
    name: str | None
    best_val_accuracy: float | None
    run: str  # queued (no duration), running (measured until now) or finished
    duration_s: float
    tagged: bool  # with a job_tags row, which a delete must take along (ON DELETE CASCADE)

    def row(self) -> Job:
        created_at = T0 + timedelta(minutes=self.created_minute)
        started_at = None if self.run == "queued" else created_at + timedelta(seconds=1)
        finished_at = None
        if started_at is not None and self.run == "finished":
            finished_at = started_at + timedelta(seconds=self.duration_s)
        status = {"queued": JobStatus.queued, "running": JobStatus.running}.get(self.run, JobStatus.succeeded)
        return Job(
            id=f"{self.high_id:08x}{next(_ids):024x}",
            name=self.name,
            status=status,
            hyperparameters={},
            created_at=created_at,
            queue_order_at=created_at,
            started_at=started_at,
            finished_at=finished_at,
            best_val_accuracy=self.best_val_accuracy,
            tags=["t"] if self.tagged else [],
        )


job_specs = st.builds(
    JobSpec,
    high_id=st.integers(0, 2**32 - 1),
    created_minute=st.integers(0, 3),
    name=st.sampled_from([None, "a", "b", "B", "a b", "é"]),
    best_val_accuracy=st.sampled_from([None, 0.0, 0.5, 0.9]),
    run=st.sampled_from(["queued", "running", "finished"]),
    duration_s=st.sampled_from([0.0, 1.5, 60.0]),
    tagged=st.booleans(),
)


@dataclass(frozen=True)
class Change:
    """What happens between two pages: jobs inserted, and existing jobs deleted (by position)."""

    inserted: list[JobSpec]
    deleted: list[int]


changes = st.builds(
    Change, inserted=st.lists(job_specs, max_size=3), deleted=st.lists(st.integers(0, 1000), max_size=3)
)


def _insert(engine: Engine, specs: list[JobSpec]) -> set[str]:
    rows = [spec.row() for spec in specs]
    with write_session(engine) as session:
        session.add_all(rows)
        session.flush()
        session.add_all(JobTag(job_id=row.id, tag=tag) for row in rows for tag in row.tags)
    return {row.id for row in rows}


@pytest.mark.parametrize("sort", list(JobSort))
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    initial=st.lists(job_specs, min_size=1, max_size=10),
    limit=st.integers(1, 4),
    between=st.lists(changes, max_size=12),
)
def test_paging_under_every_sort_sees_each_job_once_and_misses_none_that_stayed(
    client: TestClient,
    engine: Engine,
    sort: JobSort,
    initial: list[JobSpec],
    limit: int,
    between: list[Change],
) -> None:
    with write_session(engine) as session:
        session.execute(delete(Job))  # each example starts from an empty table
    existing = _insert(engine, initial)
    stayed = set(existing)
    seen: list[str] = []
    params: dict[str, str | int] = {"sort": sort.value, "limit": limit}
    for change in itertools.chain(between, itertools.repeat(Change([], []))):
        response = client.get("/jobs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [job["id"] for job in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
        gone = {sorted(existing)[i % len(existing)] for i in change.deleted} if existing else set()
        with write_session(engine) as session:
            # Their job_tags rows go with them (ON DELETE CASCADE).
            session.execute(delete(Job).where(col(Job.id).in_(gone)))
        existing -= gone
        stayed -= gone
        existing |= _insert(engine, change.inserted)
    assert len(seen) == len(set(seen)), "a job was shown twice"
    assert stayed <= set(seen), "a job that existed throughout was missed"
