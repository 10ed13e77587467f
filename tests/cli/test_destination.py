"""Where a download may go, checked on real files, pipes and links before any byte is fetched."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from trainq.destination import check_target, make_folder, split_destination
from trainq.errors import TrainqError


def test_a_trailing_slash_or_an_existing_folder_names_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "folder")
    assert split_destination(None) == (tmp_path, None)
    assert split_destination("missing/") == (Path("missing"), None)
    assert split_destination(tmp_path / "folder") == (tmp_path / "folder", None)
    assert split_destination("link") == (Path("link"), None)
    assert split_destination("missing/model.pt") == (Path("missing"), "model.pt")
    assert split_destination(Path("model.pt")) == (Path("."), "model.pt")


def test_a_missing_folder_is_created_with_its_parents(tmp_path: Path) -> None:
    make_folder(tmp_path / "a" / "b")
    make_folder(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()


def test_a_folder_that_cannot_be_created_says_why(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(TrainqError, match=r"file: it is a regular file, not a folder$"):
        make_folder(tmp_path / "file")
    with pytest.raises(TrainqError, match=r"cannot create the folder .*file/sub: Not a directory"):
        make_folder(tmp_path / "file" / "sub")


def test_a_new_path_or_a_replaceable_file_may_be_written(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    check_target(target, force=False)
    target.write_bytes(b"old")
    (tmp_path / "model.pt.part").write_bytes(b"partial")
    check_target(target, force=True)
    (tmp_path / "elsewhere.pt").write_bytes(b"kept")
    target.unlink()
    target.symlink_to(tmp_path / "elsewhere.pt")
    check_target(target, force=True)


def test_an_existing_file_needs_force(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"old")
    with pytest.raises(TrainqError, match=r"model.pt already exists; pass --force"):
        check_target(tmp_path / "model.pt", force=False)


@pytest.mark.parametrize("force", [False, True])
def test_targets_that_are_not_regular_files_are_refused_even_with_force(tmp_path: Path, force: bool) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to-pipe").symlink_to(tmp_path / "pipe")
    (tmp_path / "to-nothing").symlink_to(tmp_path / "nothing")
    (tmp_path / "folder").mkdir()
    refused = {
        "pipe": "it is a named pipe",
        "to-pipe": "it is a link to a named pipe",
        "to-nothing": "it is a link to nothing",
        "folder": "it is a folder",
    }
    for name, reason in refused.items():
        with pytest.raises(TrainqError, match=f"cannot save to .*/{name}: {reason}; choose another path"):
            check_target(tmp_path / name, force=force)
    assert stat.S_ISFIFO((tmp_path / "pipe").stat().st_mode)


@pytest.mark.parametrize("force", [False, True])
def test_a_part_file_that_is_not_a_regular_file_is_refused(tmp_path: Path, force: bool) -> None:
    os.mkfifo(tmp_path / "piped.pt.part")
    (tmp_path / "elsewhere.pt").write_bytes(b"someone else's")
    (tmp_path / "linked.pt.part").symlink_to(tmp_path / "elsewhere.pt")
    with pytest.raises(TrainqError, match=r"piped.pt.part is a named pipe; remove it or choose another path"):
        check_target(tmp_path / "piped.pt", force=force)
    with pytest.raises(TrainqError, match=r"linked.pt.part is a link to a regular file; remove it"):
        check_target(tmp_path / "linked.pt", force=force)


def test_a_file_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(TrainqError, match=r"the folder .*/missing does not exist$"):
        check_target(tmp_path / "missing" / "model.pt", force=True)
    with pytest.raises(TrainqError, match=r"the folder .*/file is not a folder$"):
        check_target(tmp_path / "file" / "model.pt", force=True)
