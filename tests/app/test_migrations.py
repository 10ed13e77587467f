"""Schema migrations on empty SQLite and PostgreSQL databases, and on a database trainq 0.1.0 made.

tests/fixtures/trainq-0.1.0.db was made by trainq 0.1.0's own code (commit b4d40f3, the last
before migrations): in a worktree of that commit, tests/fixtures/make_trainq_0_1_0_db.py created
it with that code's create_schema (SQLModel create_all) and filled it through that code's
app.queue: six jobs (succeeded with three epochs and an idempotency key, failed, running,
handed back with a resume file, cancelled, queued), six metric rows, three checkpoints and
24 events. Its docstring has the commands.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, UniqueConstraint, inspect, text
from sqlmodel import SQLModel, col, select

from app import queue
from app.contract import FailureReason, StopReason
from app.db import make_engine, read_session
from app.migrations import (
    SchemaOutOfDate,
    UnknownSchema,
    check_current,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from app.models import Checkpoint, EpochMetric, Job, JobCreate, JobEvent, JobStatus
from tests.factories import COMPLETED, ONE_CPU, epoch_metrics, submit_job

FIXTURE_0_1_0 = Path(__file__).parents[1] / "fixtures" / "trainq-0.1.0.db"
TABLES = ("jobs", "epoch_metrics", "checkpoints", "job_events")
LEASE_S = 60.0


@pytest.fixture
def empty_engine(empty_database: str) -> Iterator[Engine]:
    engine = make_engine(empty_database)
    yield engine
    engine.dispose()


def schema_differences(engine: Engine, metadata: MetaData = SQLModel.metadata) -> list[Any]:
    """What autogenerate would change to make the database match the models: tables, columns,
    types, nullability, indexes, unique constraints, foreign keys and their ON DELETE."""
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() for table in TABLES
        }


def sqlite_rows(path: Path, table: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(f"SELECT * FROM {table} ORDER BY id")]


def sqlite_schema(path: Path) -> dict[str, str]:
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE tbl_name != 'alembic_version'")
        return dict(rows.fetchall())


def job_with_history(engine: Engine) -> str:
    """A job that ran an epoch and listed a checkpoint: rows in every table."""
    job = submit_job(engine)
    lease = queue.claim(engine, worker_id="w1", lease_seconds=LEASE_S, capabilities=ONE_CPU)
    assert lease is not None
    checkpoint = queue.CheckpointFile(
        epoch=1, file_name="epoch-0001.pt", size_bytes=10, sha256="0" * 64, is_best=True
    )
    queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1), progress=0.5, checkpoint=checkpoint)
    return job.id


def test_upgrading_an_empty_database_gives_exactly_the_models_schema(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    assert schema_differences(empty_engine) == []
    assert current_revision(empty_engine) == head_revision()
    check_current(empty_engine)


def test_the_schema_comparison_notices_a_missing_index_and_unique_constraint(empty_engine: Engine) -> None:
    # Guards the test above: an empty difference must mean the indexes and constraints match.
    partial = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(partial)
    jobs = partial.tables["jobs"]
    jobs.indexes.remove(next(index for index in jobs.indexes if index.name == "ix_jobs_created"))
    jobs.constraints.remove(next(c for c in jobs.constraints if isinstance(c, UniqueConstraint)))
    partial.create_all(empty_engine)
    found = {
        (change[0], tuple(column.name for column in change[1].columns))
        for change in schema_differences(empty_engine)
    }
    assert found == {("add_index", ("created_at", "id")), ("add_constraint", ("owner", "idempotency_key"))}


def test_sqlite_tables_that_readers_follow_by_id_never_reuse_ids(tmp_path: Path) -> None:
    # AUTOINCREMENT is not something autogenerate compares.
    engine = make_engine(f"sqlite:///{tmp_path / 'trainq.db'}")
    upgrade(engine)
    engine.dispose()
    schema = sqlite_schema(tmp_path / "trainq.db")
    assert "AUTOINCREMENT" in schema["epoch_metrics"] and "AUTOINCREMENT" in schema["job_events"]


def test_revision_0001_is_the_schema_trainq_0_1_0_made(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'trainq.db'}")
    upgrade(engine, revision="0001")
    engine.dispose()
    # A copy: opening a WAL file writes beside it.
    shutil.copy(FIXTURE_0_1_0, tmp_path / "0.1.0.db")
    assert sqlite_schema(tmp_path / "trainq.db") == sqlite_schema(tmp_path / "0.1.0.db")


def test_downgrading_step_by_step_and_upgrading_again_keeps_the_schema_and_every_row(
    empty_engine: Engine,
) -> None:
    upgrade(empty_engine)
    job_with_history(empty_engine)
    counts = row_counts(empty_engine)
    assert all(counts.values())

    downgrade(empty_engine, "-1")
    assert current_revision(empty_engine) == "0005"
    columns = {column["name"] for column in inspect(empty_engine).get_columns("jobs")}
    assert "tags" in columns and "cpu_threads" not in columns
    assert row_counts(empty_engine) == counts

    downgrade(empty_engine, "-1")
    assert current_revision(empty_engine) == "0004"
    columns = {column["name"] for column in inspect(empty_engine).get_columns("jobs")}
    assert "exports" in columns and not {"tags", "priority", "queue_order_at", "sweep_id"} & columns
    assert not {"job_tags", "sweeps"} & set(inspect(empty_engine).get_table_names())
    # SQLite copies the jobs table to drop a column: the rows that reference jobs stay.
    assert row_counts(empty_engine) == counts
    with pytest.raises(SchemaOutOfDate, match="is at schema revision 0004, this code needs"):
        check_current(empty_engine)

    upgrade(empty_engine)
    assert schema_differences(empty_engine) == []
    assert row_counts(empty_engine) == counts


def test_a_database_made_by_trainq_0_1_0_upgrades_with_every_row_kept(tmp_path: Path) -> None:
    path = tmp_path / "trainq.db"
    shutil.copy(FIXTURE_0_1_0, path)
    before = {table: sqlite_rows(path, table) for table in TABLES}
    engine = make_engine(f"sqlite:///{path}")
    with pytest.raises(SchemaOutOfDate, match=r"has trainq 0\.1\.0's schema"):
        check_current(engine)

    upgrade(engine)

    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []
    after = {table: sqlite_rows(path, table) for table in TABLES}
    assert [len(rows) for rows in before.values()] == [6, 6, 3, 24]
    assert all(row.pop("resume_sha256") is None for row in after["jobs"])
    # Revision 0003: every old job asks for what it got then, one device of its kind and no labels.
    assert all(row.pop("devices") == 1 for row in after["jobs"])
    assert all(row.pop("labels") == "[]" for row in after["jobs"])
    assert [row.pop("device_kind") for row in after["jobs"]] == [
        json.loads(row["hyperparameters"])["device"] for row in before["jobs"]
    ]

    # Revision 0004: how each old job ended, where its rows tell; the rest of the results unknown.
    def stop_reason(job: dict) -> str | None:
        if job["status"] == "failed":
            return StopReason.of_failure(FailureReason(job["error_reason"]))
        return "cancelled" if job["status"] == "cancelled" else None

    assert [row.pop("stop_reason") for row in after["jobs"]] == [stop_reason(row) for row in before["jobs"]]
    assert "nan_loss" in [stop_reason(row) for row in before["jobs"]]
    best = {row["job_id"]: row["epoch"] for row in before["checkpoints"] if row["is_best"]}
    assert [row.pop("best_epoch") for row in after["jobs"]] == [best.get(row["id"]) for row in before["jobs"]]
    assert any(best.values())
    for column in ("dataset_info", "warm_start", "val_metrics", "test_metrics", "exports"):
        assert all(row.pop(column) is None for row in after["jobs"])
    # Revision 0005: no tags or notes, priority 0 in the order they came, the best val_accuracy.
    assert all(row.pop("tags") == "[]" and row.pop("notes") is None for row in after["jobs"])
    assert all(row.pop("priority") == 0 and row.pop("sweep_id") is None for row in after["jobs"])
    assert [row.pop("queue_order_at") for row in after["jobs"]] == [
        row["created_at"] for row in before["jobs"]
    ]
    best_accuracy: dict[str, float] = {}
    for row in before["epoch_metrics"]:
        best_accuracy[row["job_id"]] = max(best_accuracy.get(row["job_id"], 0.0), row["val_accuracy"])
    assert [row.pop("best_val_accuracy") for row in after["jobs"]] == [
        best_accuracy.get(row["id"]) for row in before["jobs"]
    ]
    assert any(best_accuracy.values())
    # Revision 0006: the threads old jobs trained with are unknown.
    assert all(row.pop("cpu_threads") is None for row in after["jobs"])
    assert after == before
    engine.dispose()


def test_a_database_made_by_trainq_0_1_0_works_with_todays_queue_after_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "trainq.db"
    shutil.copy(FIXTURE_0_1_0, path)
    last_event_id = max(row["id"] for row in sqlite_rows(path, "job_events"))
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)

    # The oldest queued job is the one handed back mid-epoch: it resumes from its file.
    lease = queue.claim(engine, worker_id="w-new", lease_seconds=LEASE_S, capabilities=ONE_CPU)
    assert lease is not None
    assert (lease.attempt, lease.resume_file) == (2, "attempt-1/resume.pt")
    queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(2), progress=1.0)
    assert queue.succeed(engine, lease=lease, runtime_seconds=9.0, results=COMPLETED)
    # The idempotency key and its unique constraint survived: the same request is a replay.
    with read_session(engine) as session:
        alice = session.exec(select(Job).where(Job.owner == "alice")).one()
        metrics = session.exec(select(EpochMetric).where(EpochMetric.job_id == lease.job_id)).all()
        new_events = session.exec(select(JobEvent).where(col(JobEvent.id) > last_event_id)).all()
        checkpoints = session.exec(select(Checkpoint).where(Checkpoint.job_id == alice.id)).all()
    job_in = JobCreate.model_validate({"name": "succeeded", "hyperparameters": alice.hyperparameters})
    replayed, created = queue.submit(engine, job_in=job_in, owner="alice", idempotency_key="key-1")
    assert (replayed.id, created) == (alice.id, False)
    assert [m.epoch for m in metrics] == [1, 2]
    assert [e.data.get("status") for e in new_events if e.kind == "status"] == ["running", "succeeded"]
    assert sorted((c.epoch, c.is_best) for c in checkpoints) == [(2, True), (3, False)]
    queued = submit_job(engine)
    assert queue.cancel(engine, job_id=queued.id) is not None
    with read_session(engine) as session:
        assert session.get(Job, alice.id).status == JobStatus.succeeded  # type: ignore[union-attr]
    engine.dispose()


def test_tables_without_a_revision_that_trainq_did_not_make_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "trainq.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY)")
    engine = make_engine(f"sqlite:///{path}")
    with pytest.raises(UnknownSchema, match="has trainq's tables jobs but not checkpoints"):
        upgrade(engine)
    engine.dispose()
    assert set(sqlite_schema(path)) == {"jobs", "sqlite_autoindex_jobs_1"}


def test_a_database_upgraded_by_newer_code_is_named_as_such(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'trainq.db'}")
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    for check in (check_current, upgrade):
        with pytest.raises(SchemaOutOfDate, match="revision 0099, which this code does not know"):
            check(engine)
    engine.dispose()
