"""How an image folder is laid out: which files are which split's images of which class.

Standard library only, so the API can check a folder at dry-run time with exactly the rules
(and the messages) the worker trains by. Two layouts are accepted:
- class_folders: one sub-folder per class directly in the dataset folder;
- split_folders: train/ with one sub-folder per class, and optionally val/ (or valid/,
  validation/) and test/ laid out the same way.
Any other folder next to train/ is an error rather than a class, and so is a class folder
without images or a val/test class that train/ lacks. Names starting with "." are ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# torchvision.datasets.folder.IMG_EXTENSIONS, matched case-insensitively as torchvision does.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
VAL_FOLDERS = ("val", "valid", "validation")
TEST_FOLDER = "test"
TRAIN_FOLDER = "train"

Layout = Literal["class_folders", "split_folders"]


class LayoutError(ValueError):
    """The folder cannot be trained on as it is; the message says what to change."""


@dataclass(frozen=True)
class Split:
    """One split's images: `files[i]` (relative to the dataset folder) shows class `labels[i]`."""

    folder: str  # relative to the dataset folder: "" (class_folders), "train", "val", ...
    files: tuple[str, ...]
    labels: tuple[int, ...]


@dataclass(frozen=True)
class ImageFolderLayout:
    root: Path  # the dataset folder, resolved
    layout: Layout
    classes: tuple[str, ...]  # train's class folders, sorted: index order
    train: Split
    val: Split | None  # None: carve it out of train
    test: Split | None


def find_layout(data_dir: Path, dataset_path: str) -> ImageFolderLayout:
    """The layout of `data_dir/dataset_path`, every image listed; LayoutError if it has none."""
    data_root = Path(os.path.realpath(data_dir))
    if not data_root.is_dir():
        raise LayoutError(f"the data folder {data_dir} does not exist on this machine")
    root = Path(os.path.realpath(data_root / dataset_path))
    if not root.is_relative_to(data_root):
        raise LayoutError(
            f"dataset_path {dataset_path!r} leads to {root}, outside the data folder {data_root}; "
            "copy the images into the data folder instead of linking to them"
        )
    if not root.is_dir():
        raise LayoutError(
            f"dataset_path {dataset_path!r} does not exist: create {data_root / dataset_path}/ "
            "with one sub-folder of images per class (or train/, val/ and test/ folders laid out that way)"
        )
    folders = _sub_folders(root)
    if TRAIN_FOLDER not in folders:
        train = _scan_split(root, "", data_root, classes=None)
        return ImageFolderLayout(root, "class_folders", _classes(root, ""), train, None, None)

    val_folders = [name for name in folders if name in VAL_FOLDERS]
    others = [name for name in folders if name not in (TRAIN_FOLDER, TEST_FOLDER, *VAL_FOLDERS)]
    if others:
        raise LayoutError(
            f"dataset_path {dataset_path!r} has a train/ folder, so the folders next to it must be "
            f"val/ (or valid/, validation/) and test/, but it also has {', '.join(f'{n}/' for n in others)}: "
            "move or remove them (with train/ present they are not classes)"
        )
    if len(val_folders) > 1:
        raise LayoutError(
            f"dataset_path {dataset_path!r} has {' and '.join(f'{n}/' for n in val_folders)}: "
            "keep one validation folder"
        )
    classes = _classes(root, TRAIN_FOLDER)
    train = _scan_split(root, TRAIN_FOLDER, data_root, classes=None)
    val = _scan_split(root, val_folders[0], data_root, classes) if val_folders else None
    test = _scan_split(root, TEST_FOLDER, data_root, classes) if TEST_FOLDER in folders else None
    return ImageFolderLayout(root, "split_folders", classes, train, val, test)


def _sub_folders(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _classes(root: Path, split: str) -> tuple[str, ...]:
    return tuple(_sub_folders(root / split))


def _scan_split(root: Path, split: str, data_root: Path, classes: tuple[str, ...] | None) -> Split:
    """Every image of `root/split`, labelled by `classes` (None: this split's own classes)."""
    folder = root / split
    own = _classes(root, split)
    where = f"{split}/" if split else f"{root.name}/"
    if not own:
        raise LayoutError(
            f"{where} has no class folders: expected one sub-folder of images per class, "
            f"e.g. {where}cat/0001.jpg"
        )
    index = {name: i for i, name in enumerate(own if classes is None else classes)}
    unknown = [name for name in own if name not in index]
    if unknown:
        raise LayoutError(
            f"{where} has classes that train/ lacks: {', '.join(unknown)}; "
            "add them to train/ or remove them from " + where
        )
    files: list[str] = []
    labels: list[int] = []
    empty: list[str] = []
    for name in own:
        found = _images_in(folder / name, root, data_root)
        if not found:
            empty.append(f"{where}{name}/" if split else f"{name}/")
        files.extend(found)
        labels.extend([index[name]] * len(found))
    if empty:
        raise LayoutError(
            f"no images found in class folder(s) {', '.join(empty)}: add images "
            f"({', '.join(IMAGE_EXTENSIONS)}) or remove the folder(s)"
        )
    return Split(split, tuple(files), tuple(labels))


def _images_in(class_folder: Path, root: Path, data_root: Path) -> list[str]:
    """Image files under `class_folder` (sub-folders too, as torchvision's ImageFolder), sorted,
    relative to `root`. Links may be used, but each must stay inside the data folder."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(class_folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.startswith(".") or not filename.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = Path(dirpath) / filename
            if not Path(os.path.realpath(path)).is_relative_to(data_root):
                raise LayoutError(
                    f"{path.relative_to(root)} is a link to a file outside the data folder {data_root}; "
                    "copy it in instead"
                )
            found.append(path.relative_to(root).as_posix())
    return found
