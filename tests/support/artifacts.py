"""Looking at a job's files from the outside, as a test or a person on the machine would."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx

from tests.support.polling import wait_for


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below `folder` (relative name → (size, mtime_ns)), to tell whether any changed."""
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            found[path.relative_to(folder).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


def unlisted_files(state_dir: Path, job_id: str) -> list[str]:
    """Files in the job's folder, logs aside, that neither a checkpoint row nor the job's exports name."""
    with closing(sqlite3.connect(state_dir / "trainq.db")) as db:
        listed = {
            name for (name,) in db.execute("SELECT file_name FROM checkpoints WHERE job_id = ?", (job_id,))
        }
        (exports,) = db.execute("SELECT exports FROM jobs WHERE id = ?", (job_id,)).fetchone()
        listed |= {export["file_name"] for export in json.loads(exports or "[]")}
    on_disk = files_under(state_dir / "artifacts" / job_id)
    return sorted(name for name in on_disk if name not in listed and not name.startswith("logs/"))


def assert_listed_checkpoints_download_intact(http: httpx.Client, job_id: str) -> list[dict]:
    """Every checkpoint the job lists downloads with the sha256 it is listed with."""
    listed = http.get(f"/jobs/{job_id}/checkpoints").json()
    assert listed, f"job {job_id} lists no checkpoint"
    for entry in listed:
        response = http.get(entry["url"])
        assert response.status_code == 200, response.text
        assert hashlib.sha256(response.content).hexdigest() == entry["sha256"], entry
    return list(listed)


def stop_holding_no_write_lock(pid: int, database: Path) -> None:
    """SIGSTOP a process at a moment it holds no SQLite write lock.

    A process stopped inside a write transaction stops every writer with it, which is not
    what a test of a stalled worker is after."""

    def stopped_outside_a_write() -> bool:
        os.kill(pid, signal.SIGSTOP)
        try:
            with closing(sqlite3.connect(database, timeout=0.5, isolation_level=None)) as db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("ROLLBACK")
        except sqlite3.OperationalError:
            os.kill(pid, signal.SIGCONT)
            return False
        return True

    wait_for(
        stopped_outside_a_write, timeout_s=30, interval_s=0.01, what=f"process {pid} stopped outside a write"
    )
