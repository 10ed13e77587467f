"""Where a job's files live, for the API and the worker alike.

TRAINQ_ARTIFACTS_DIR/<job id>/ holds each attempt's checkpoints in attempt-N/ and its
training log in logs/attempt-N.log. An attempt writes only into its own folder, so a
stale attempt (one whose lease is gone but whose process still runs) can never replace a
file that another attempt listed: the database row names the file with its folder.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

_ATTEMPT_DIR = re.compile(r"^attempt-(\d+)$")


def job_dir(artifacts_dir: Path, job_id: str) -> Path:
    return artifacts_dir / job_id


def attempt_dir(job_folder: Path, attempt: int) -> Path:
    return job_folder / f"attempt-{attempt}"


def attempt_dirs(job_folder: Path) -> list[tuple[int, Path]]:
    """(attempt, folder) for every attempt that made a checkpoint folder, in attempt order."""
    if not job_folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in job_folder.iterdir() if (m := _ATTEMPT_DIR.match(p.name))]
    return sorted(found)


def remove_stale_files(job_folder: Path, *, attempt: int, listed: Collection[str]) -> list[Path]:
    """Delete what the attempts before `attempt` left that no row lists (`listed`: file names
    relative to the job's folder): partial files of a crash mid-write, and checkpoints written
    after their attempt's lease was gone. Returns what was deleted.

    Safe for any attempt to call, even a stale one: it never touches its own folder or a later
    attempt's, and a row can never start listing an earlier attempt's file once `attempt` holds
    the job, so the caller's `listed` (read when it claimed the job) is never too short."""
    keep = {job_folder / name for name in listed}
    removed: list[Path] = []
    for number, folder in attempt_dirs(job_folder):
        if number >= attempt:
            continue
        for path in folder.iterdir():
            if path not in keep and not path.is_dir():
                path.unlink(missing_ok=True)
                removed.append(path)
        if not any(folder.iterdir()):
            folder.rmdir()
    # Partial files of versions that wrote checkpoints straight into the job's folder.
    for partial in job_folder.glob(".*.tmp"):
        partial.unlink(missing_ok=True)
        removed.append(partial)
    return removed
