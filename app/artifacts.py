"""Where a job's files live, for the API and the worker alike.

TRAINQ_ARTIFACTS_DIR/<job id>/ holds each attempt's checkpoints in attempt-N/ and its
training log in logs/attempt-N.log; the functions below are the one definition of that layout. An attempt writes only into its own folder, so a
stale attempt (one whose lease is gone but whose process still runs) can never replace a
file that another attempt listed: the database row names the file with its folder.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Collection
from pathlib import Path

_ATTEMPT_DIR = re.compile(r"^attempt-(\d+)$")
LOGS_DIR_NAME = "logs"
# Written into a job's folder before its rows are deleted: a folder that has it and no job row is a
# deleted job's, which start-up removes (a folder without it and without a row is one the database
# forgot, which app.integrity reports and nothing removes).
DELETED_MARKER = ".deleted"
# A deleted job's folder is renamed to this (plus the job id) before it is removed, so that a
# removal cut short never leaves a half-removed folder under the job's own name.
_DELETING_PREFIX = ".deleting-"


def job_dir(artifacts_dir: Path, job_id: str) -> Path:
    return artifacts_dir / job_id


def attempt_dir(job_folder: Path, attempt: int) -> Path:
    return job_folder / attempt_file_name(attempt)


def attempt_file_name(attempt: int, name: str | None = None) -> str:
    """An attempt's folder, or a file in it, as the job's rows name it (relative to the job's folder)."""
    folder = f"attempt-{attempt}"
    return folder if name is None else f"{folder}/{name}"


def log_path(job_folder: Path, attempt: int) -> Path:
    return job_folder / LOGS_DIR_NAME / f"attempt-{attempt}.log"


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


def mark_deleted(job_folder: Path) -> None:
    """Mark the folder as a deleted job's (before its rows go): durable, so that a crash after the
    rows' commit still finds it. A job without a folder needs none."""
    if not job_folder.is_dir():
        return
    marker = job_folder / DELETED_MARKER
    with marker.open("wb") as file:
        os.fsync(file.fileno())
    _fsync_dir(job_folder)


def unmark_deleted(job_folder: Path) -> None:
    (job_folder / DELETED_MARKER).unlink(missing_ok=True)


def is_marked_deleted(job_folder: Path) -> bool:
    return (job_folder / DELETED_MARKER).is_file()


def remove_job_folder(artifacts_dir: Path, job_id: str) -> bool:
    """Remove a deleted job's folder (whose rows are gone); False when it had none. Renamed out of
    the way first (one atomic step), then removed: a crash in between leaves a `.deleting-` folder,
    which `deleting_folders` finds."""
    folder = job_dir(artifacts_dir, job_id)
    if not folder.is_dir():
        return False
    trash = artifacts_dir / f"{_DELETING_PREFIX}{job_id}"
    if trash.exists():
        shutil.rmtree(trash)
    os.rename(folder, trash)
    shutil.rmtree(trash)
    return True


def deleting_folders(artifacts_dir: Path) -> list[Path]:
    """Folders whose removal was cut short (`remove_job_folder`)."""
    if not artifacts_dir.is_dir():
        return []
    return sorted(p for p in artifacts_dir.iterdir() if p.name.startswith(_DELETING_PREFIX) and p.is_dir())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
