"""The database of bench/scale.py: 100,000 jobs and 1,000,000 metric rows, built once and cached.

Fills the tables that app.migrations.upgrade makes with sqlite3's executemany (every NOT
NULL column, in the formats SQLAlchemy writes): jobs created over 100 days (2 % queued,
10 % failed, 8 % cancelled, the rest succeeded), the metric rows spread over the jobs
that ran (about 10 each), a checkpoint per succeeded job, and the event stream's rows
(a status event per change, one per metric row and checkpoint). The file is cached in
the temp folder, keyed by the sizes and the schema, and reused by later runs.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

GENERATOR_VERSION = 2  # bump when the generated rows change, so older caches are not reused
BATCH_JOBS = 5000
EPOCH_S = 2.5
TABLES = ("jobs", "epoch_metrics", "checkpoints", "job_events")  # in foreign-key order
STATUS_EVERY_50 = ["queued"] + ["failed"] * 5 + ["cancelled"] * 4 + ["succeeded"] * 40


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's DATETIME text on SQLite


def schema_sql() -> str:
    from app.db import make_engine
    from app.migrations import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/schema.db")
        upgrade(engine)
        engine.dispose()
        with sqlite3.connect(f"{tmp}/schema.db") as db:
            return "\n".join(
                sql for (sql,) in db.execute("SELECT sql FROM sqlite_master ORDER BY name") if sql
            )


def insert(db: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    names, values = ", ".join(columns), ", ".join(f":{c}" for c in columns)
    db.executemany(f"INSERT INTO {table} ({names}) VALUES ({values})", rows)


def job_row(
    job_id: str, index: int, status: str, created: datetime, epochs: int, hyperparameters: str
) -> dict[str, Any]:
    ran, failed = status != "queued", status == "failed"
    started = created + timedelta(seconds=2)
    return {
        "id": job_id,
        "name": f"job {index}",
        "owner": "anonymous",
        "status": status,
        "hyperparameters": hyperparameters,
        "created_at": stamp(created),
        "queue_order_at": stamp(created),  # priority 0
        "best_val_accuracy": 0.9 - 1 / (epochs + 2) if ran and epochs else None,
        "started_at": stamp(started) if ran else None,
        "finished_at": stamp(started + timedelta(seconds=EPOCH_S * epochs)) if ran else None,
        "attempts": int(ran),
        "failures": 0,
        "max_attempts": 3,
        "runtime_seconds": EPOCH_S * epochs,
        "current_epoch": epochs,
        "progress": 1.0 if status == "succeeded" else epochs / (epochs + 1),
        "device": "cpu" if ran else None,
        "precision": "fp32" if ran else None,
        "worker_id": "bench:1" if ran else None,
        "error_reason": "training_error" if failed else None,
        "error_message": "RuntimeError: boom" if failed else None,
    }


def job_rows(
    index: int, created: datetime, epochs: int, hyperparameters: str, rng: random.Random
) -> dict[str, list[dict[str, Any]]]:
    """One job and everything it left behind, as rows of each table."""
    job_id, status = f"{rng.getrandbits(128):032x}", STATUS_EVERY_50[index % 50]
    rows: dict[str, list[dict[str, Any]]] = {table: [] for table in TABLES}
    rows["jobs"].append(job_row(job_id, index, status, created, epochs, hyperparameters))

    def event(kind: str, at: datetime, data: dict[str, Any]) -> None:
        row = {"job_id": job_id, "kind": kind, "data": json.dumps(data), "created_at": stamp(at)}
        rows["job_events"].append(row)

    def status_event(value: str, attempt: int, at: datetime) -> None:
        event("status", at, {"status": value, "attempt": attempt, "error": None, "at": at.isoformat()})

    status_event("queued", 0, created)
    if status == "queued":
        return rows
    started = created + timedelta(seconds=2)
    status_event("running", 1, started)
    for epoch in range(1, epochs + 1):
        at = started + timedelta(seconds=EPOCH_S * epoch)
        metric = {
            "epoch": epoch,
            "attempt": 1,
            "train_loss": 1 / epoch,
            "train_accuracy": 1 - 1 / (epoch + 1),
        }
        metric |= {"val_loss": 1.1 / epoch, "val_accuracy": 0.9 - 1 / (epoch + 2), "learning_rate": 1e-3}
        metric |= {"duration_seconds": EPOCH_S, "samples_per_second": 575.0}
        rows["epoch_metrics"].append({**metric, "job_id": job_id, "created_at": stamp(at)})
        event("epoch", at, metric)
    finished = started + timedelta(seconds=EPOCH_S * epochs)
    if status == "succeeded":
        checkpoint = {"epoch": epochs, "size_bytes": 450_000, "sha256": f"{rng.getrandbits(256):064x}"}
        listed = {"job_id": job_id, "file_name": f"epoch-{epochs:04d}.pt", "created_at": stamp(finished)}
        rows["checkpoints"].append({**checkpoint, "is_best": 1, **listed})
        url = f"/jobs/{job_id}/checkpoints/{epochs}"
        event(
            "checkpoint",
            finished,
            {**checkpoint, "is_best": True, "created_at": finished.isoformat(), "url": url},
        )
    status_event(status, 1, finished)
    return rows


def build(path: Path, jobs: int, metric_rows: int) -> None:
    """Write the database to a side file and rename it, so an interrupted build is never reused."""
    from app.db import make_engine
    from app.hyperparameters import Hyperparameters
    from app.migrations import upgrade

    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{partial}")
    upgrade(engine)
    engine.dispose()
    hyperparameters = json.dumps(Hyperparameters().model_dump(mode="json"))
    ran = sum(STATUS_EVERY_50[i % 50] != "queued" for i in range(jobs))
    base, extra = divmod(metric_rows, ran)
    rng, first_created = random.Random(0), datetime.now(UTC) - timedelta(days=100)
    spacing, ran_so_far = timedelta(days=100) / jobs, 0
    db = sqlite3.connect(partial)
    # No journal while building: the file only becomes the cache once complete.
    db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-512000;")
    for first in range(0, jobs, BATCH_JOBS):
        tables: dict[str, list[dict[str, Any]]] = {table: [] for table in TABLES}
        for index in range(first, min(first + BATCH_JOBS, jobs)):
            epochs = 0
            if STATUS_EVERY_50[index % 50] != "queued":
                epochs, ran_so_far = base + (ran_so_far < extra), ran_so_far + 1
            for table, rows in job_rows(
                index, first_created + spacing * index, epochs, hyperparameters, rng
            ).items():
                tables[table] += rows
        for table, rows in tables.items():
            if rows:
                insert(db, table, rows)
        db.commit()
    db.execute("PRAGMA journal_mode=WAL")  # as the service's connections leave it
    db.close()
    partial.rename(path)


def cached_database(jobs: int, metric_rows: int) -> Path:
    digest = hashlib.sha256(f"{GENERATOR_VERSION}\n{schema_sql()}".encode()).hexdigest()[:12]
    prefix = f"trainq-bench-scale-{jobs}-{metric_rows}-"
    path = Path(tempfile.gettempdir()) / f"{prefix}{digest}.db"
    if path.exists():
        print(f"reusing {path}")
        return path
    for stale in path.parent.glob(f"{prefix}*.db*"):  # the same sizes for an older schema
        stale.unlink()
    start = time.perf_counter()
    build(path, jobs, metric_rows)
    print(f"built {path} ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - start:.0f} s")
    return path
