"""Target 3 of the performance issue: how soon an idle worker starts a new job.

    python bench/pickup.py [--jobs 40]

Starts a real API and one worker with the default settings, then submits tiny jobs
one at a time, each only after the last one ended and the worker is idle again, and
reports the percentiles of started_at - created_at (submit to claim, from the
database's own timestamps). Target: p50 <= 100 ms, p99 <= 250 ms.

Then it runs the worker loop itself in this process on an empty queue for a few
seconds and counts the SQL statements it sends: what an idle worker costs the database.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from live_service import ROOT, live_service, percentile, run_job

sys.path.insert(0, str(ROOT))

TINY_JOB = {
    "dataset": "fake",
    "fake_samples": 20,
    "image_size": 8,
    "model": "mlp",
    "epochs": 1,
    "batch_size": 16,
}


def idle_statements(seconds: float) -> tuple[int, int]:
    """(reads, write transactions) an idle worker with default settings sends in `seconds`."""
    from sqlalchemy import event

    from app.db import make_engine
    from app.migrations import upgrade
    from app.settings import Settings
    from worker.claim_loop import Worker

    with tempfile.TemporaryDirectory(prefix="trainq-bench-") as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/trainq.db", artifacts_dir=Path(tmp) / "a")
        engine = make_engine(settings.database_url)
        upgrade(engine)
        stop = threading.Event()
        worker = Worker(engine=engine, settings=settings, stop=stop)
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        thread = threading.Thread(target=worker.run)
        thread.start()
        stop.wait(seconds)
        stop.set()
        thread.join()
    writes = sum(s.startswith("BEGIN IMMEDIATE") for s in statements)
    reads = sum(not s.startswith("BEGIN") for s in statements)
    return reads, writes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()
    delays_ms: list[float] = []
    with live_service() as (http, _):
        run_job(http, TINY_JOB)  # the first claim waits for the worker's start-up
        for _ in range(args.jobs):
            # Submit at a random point of the worker's idle poll, as real users do.
            time.sleep(random.uniform(0, 1))
            job = run_job(http, TINY_JOB)
            created = datetime.fromisoformat(job["created_at"])
            delays_ms.append((datetime.fromisoformat(job["started_at"]) - created).total_seconds() * 1000)
    p50, p99 = statistics.median(delays_ms), percentile(delays_ms, 0.99)
    print(
        f"submit to claim over {len(delays_ms)} jobs: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(delays_ms):.0f} ms"
    )
    print(
        f"target p50 <= 100 ms: {'met' if p50 <= 100 else 'NOT met'}; "
        f"target p99 <= 250 ms: {'met' if p99 <= 250 else 'NOT met'}"
    )
    seconds = 10.0
    reads, writes = idle_statements(seconds)
    print(
        f"an idle worker in {seconds:.0f} s: {reads} read statements ({reads / seconds:.1f}/s), "
        f"{writes} write transactions"
    )


if __name__ == "__main__":
    main()
