"""Where a downloaded checkpoint may go: a folder gets the server's file name; a file is replaced only when asked.

The checks run before the first byte is downloaded. A download appends to `<target>.part` and then renames
it over the target, so a `.part` must be a plain file (never a link, which would be written through) and a
target must be a file (a link to one is itself replaced, never written through) or nothing yet.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from trainq.download import part_path
from trainq.errors import TrainqError

# How the non-regular things a target can be are named in an error.
KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


def split_destination(path: str | Path | None) -> tuple[Path, str | None]:
    """The folder and the file name `path` asks for; the name is None where the server's name is to be used.

    None (the current folder), an existing folder (or a link to one) and a path ending in '/' name a folder.
    """
    if path is None:
        return Path.cwd(), None
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or os.path.isdir(text):
        return Path(text), None
    target = Path(text)
    return target.parent, target.name


def make_folder(folder: Path) -> None:
    """Create `folder` (and its parents) unless it is there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise TrainqError(f"cannot save into {folder}: it is {_kind(folder)}, not a folder") from None
    except OSError as exc:
        raise TrainqError(f"cannot create the folder {folder}: {exc.strerror or exc}") from exc


def check_target(target: Path, *, force: bool) -> None:
    """Refuse a target that is not a regular file (or is one and `force` is off), and a .part that is not one."""
    if not os.path.isdir(target.parent):
        missing = "does not exist" if not os.path.lexists(target.parent) else "is not a folder"
        raise TrainqError(f"cannot save to {target}: the folder {target.parent} {missing}")
    part = part_path(target)
    # A .part that is a link would have the download written into whatever it points to.
    if os.path.islink(part) or (os.path.lexists(part) and not os.path.isfile(part)):
        raise TrainqError(
            f"cannot save to {target}: {part} is {_kind(part)}; remove it or choose another path"
        )
    if not os.path.lexists(target):
        return
    if not os.path.isfile(target):
        raise TrainqError(f"cannot save to {target}: it is {_kind(target)}; choose another path")
    if not force:
        raise TrainqError(f"{target} already exists; pass --force (force=True in Python) to replace it")


def _kind(path: Path) -> str:
    """What is at a path that exists (lstat worked), as a noun phrase."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "a link to nothing"
    kind = next((kind for is_kind, kind in KINDS if is_kind(mode)), "a regular file")
    return f"a link to {kind}" if os.path.islink(path) else kind
