"""Target 7 of the performance issue: the API on a database of 100,000 jobs and 1,000,000 metric rows.

    python bench/scale.py [--jobs 100000] [--metric-rows 1000000] [--requests 500]

Builds the database once (bench/scale_db.py; cached in the temp folder) and prints
SQLite's EXPLAIN QUERY PLAN of the statements the routes run (captured in process).
Then starts uvicorn as `make run` does on the file and sends, from one client, requests
one at a time, interleaved: GET /health (the baseline), the first page of GET
/jobs?limit=50, a page half way down through its cursor, a status=failed page, and
GET /jobs/{id} of a job with ~10 metric rows. Target: p99 < 20 ms for each.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
from live_service import api_server, percentile, service_env
from scale_db import cached_database

PAGE = 50
WALK_PAGE = 500


def explain(path: Path, state_dir: Path, requests: dict[str, str]) -> None:
    """EXPLAIN QUERY PLAN of every SELECT each request makes, captured from the app run in process.
    Each request is made twice and only statements seen both times are shown: the app's task
    that takes back lost jobs queries too, at its own times."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient asks for httpx2; httpx does here
        from fastapi.testclient import TestClient
    from sqlalchemy import Engine, event

    from app.main import create_app
    from app.settings import Settings

    captured: list[tuple[str, Any]] = []

    def capture(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    def statements(client: TestClient, url: str) -> list[tuple[str, Any]]:
        captured.clear()
        client.get(url).raise_for_status()
        return list(captured)

    settings = Settings(database_url=f"sqlite:///{path}", artifacts_dir=state_dir, data_dir=state_dir)
    event.listen(Engine, "before_cursor_execute", capture)
    with TestClient(create_app(settings)) as client, sqlite3.connect(path) as db:
        for label, url in requests.items():
            first = {statement for statement, _ in statements(client, url)}
            for statement, parameters in statements(client, url):
                if statement in first:
                    short = re.sub(r"(?s)^SELECT .*? FROM", "SELECT ... FROM", " ".join(statement.split()))
                    plan = "; ".join(
                        row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
                    )
                    print(f"plan, {label}: {short}\n    -> {plan}")
    event.remove(Engine, "before_cursor_execute", capture)


def describe(path: Path, jobs: int) -> tuple[str, int]:
    """Print the row counts; return a succeeded job half way down the list and its metric rows."""
    with sqlite3.connect(path) as db:
        tables = ("jobs", "epoch_metrics", "checkpoints", "job_events")
        counts = [
            f"{table}: {db.execute(f'SELECT count(*) FROM {table}').fetchone()[0]:,} rows" for table in tables
        ]
        print(", ".join(counts))
        query = "SELECT id FROM jobs WHERE status = 'succeeded' ORDER BY created_at LIMIT 1 OFFSET ?"
        (job_id,) = db.execute(query, (jobs // 2,)).fetchone()
        (rows,) = db.execute("SELECT count(*) FROM epoch_metrics WHERE job_id = ?", (job_id,)).fetchone()
    return job_id, rows


def half_way_cursor(http: httpx.Client, jobs: int) -> str:
    """The cursor of the page half way down the list, reached through the API's own cursors."""
    limit = max(1, min(WALK_PAGE, jobs // 2))
    params: dict[str, str | int] = {"limit": limit}
    for _ in range(max(1, jobs // 2 // limit)):
        params["cursor"] = http.get("/jobs", params=params).json()["next_cursor"]
    return str(params["cursor"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--metric-rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=500, help="per endpoint")
    args = parser.parse_args()
    path = cached_database(args.jobs, args.metric_rows)
    job_id, rows = describe(path, args.jobs)
    with tempfile.TemporaryDirectory(prefix="trainq-bench-") as tmp:
        env = {**service_env(Path(tmp)), "TRAINQ_DATABASE_URL": f"sqlite:///{path}"}
        with api_server(env) as (http, _):
            cursor = httpx.QueryParams({"limit": PAGE, "cursor": half_way_cursor(http, args.jobs)})
            endpoints = {
                f"GET /jobs?limit={PAGE}": f"/jobs?limit={PAGE}",
                f"GET /jobs?limit={PAGE}&cursor=<half way>": f"/jobs?{cursor}",
                f"GET /jobs?limit={PAGE}&status=failed": f"/jobs?limit={PAGE}&status=failed",
                f"GET /jobs/{{id}} ({rows} metric rows)": f"/jobs/{job_id}",
            }
            explain(path, Path(tmp), endpoints)
            endpoints = {"GET /health": "/health", **endpoints}
            times_ms: dict[str, list[float]] = {label: [] for label in endpoints}
            for _ in range(args.requests):
                for label, url in endpoints.items():
                    start = time.perf_counter()
                    http.get(url).raise_for_status()
                    times_ms[label].append((time.perf_counter() - start) * 1000)
    health_p50 = percentile(times_ms["GET /health"], 0.5)
    for label, values in times_ms.items():
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(
            f"{label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(values):.1f} ms "
            f"({len(values)} requests); p50 {p50 / health_p50:.1f}x GET /health's"
        )
    for label, values in list(times_ms.items())[1:]:
        p99 = percentile(values, 0.99)
        print(f"target {label} p99 < 20 ms ({p99:.1f}): {'met' if p99 < 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
