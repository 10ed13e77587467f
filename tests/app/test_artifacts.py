"""A job's folder: each attempt writes into its own, and what earlier attempts left unlisted is swept."""

from __future__ import annotations

from pathlib import Path

from app.artifacts import attempt_dir, remove_stale_files


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_earlier_attempts_lose_what_no_row_lists_and_keep_what_one_does(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "attempt-1/epoch-0002.pt",  # listed: the best so far
        "attempt-1/epoch-0003.pt",  # written after attempt 1's lease was gone: never listed
        "attempt-1/.epoch-0004.pt.x1y2.tmp",  # a crash mid-write
        "attempt-2/resume.pt",  # listed: where attempt 3 starts
        "attempt-2/.epoch-0005.pt.a1b2.tmp",
        "logs/attempt-1.log",
        ".epoch-0001.pt.old.tmp",  # left by a version that wrote into the job's folder itself
    )
    removed = remove_stale_files(
        tmp_path, attempt=3, listed={"attempt-1/epoch-0002.pt", "attempt-2/resume.pt"}
    )
    assert _files(tmp_path) == ["attempt-1/epoch-0002.pt", "attempt-2/resume.pt", "logs/attempt-1.log"]
    assert len(removed) == 4


def test_an_attempt_never_sweeps_its_own_folder_or_a_later_ones(tmp_path: Path) -> None:
    # A stale attempt 1 that wakes up while attempt 2 runs must leave attempt 2's files alone.
    _touch(
        tmp_path,
        "attempt-1/.epoch-0003.pt.a.tmp",
        "attempt-2/epoch-0003.pt",
        "attempt-2/.epoch-0004.pt.b.tmp",
    )
    assert remove_stale_files(tmp_path, attempt=1, listed=set()) == []
    assert _files(tmp_path) == [
        "attempt-1/.epoch-0003.pt.a.tmp",
        "attempt-2/.epoch-0004.pt.b.tmp",
        "attempt-2/epoch-0003.pt",
    ]


def test_an_emptied_attempt_folder_is_removed_and_a_missing_job_folder_is_nothing_to_do(
    tmp_path: Path,
) -> None:
    _touch(tmp_path, "attempt-1/epoch-0001.pt")
    remove_stale_files(tmp_path, attempt=2, listed=set())
    assert not attempt_dir(tmp_path, 1).exists()
    assert remove_stale_files(tmp_path / "never-ran", attempt=1, listed=set()) == []
