"""Image folders as users ship them: each layout, and the mistakes the worker must name."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from app.contract import MAX_SKIPPED_FILES_LISTED
from app.hyperparameters import Hyperparameters
from tests.support.images import make_image_folder, write_not_an_image, write_truncated_jpeg
from worker.training import DataError
from worker.training.data import Data, build_data
from worker.training.loaders import Loader

CLASSES = ["circle", "square", "triangle"]


def _build(data_dir: Path, dataset_path: str = "shapes", **hyperparameters: Any) -> Data:
    settings = {"dataset": "imagefolder", "dataset_path": dataset_path, "num_workers": 0, "image_size": 16}
    return build_data(Hyperparameters(**{**settings, **hyperparameters}), data_dir, torch.device("cpu"))


def _labels(loader: Loader | None) -> list[int]:
    assert loader is not None
    return [label for _, labels in loader for label in labels.tolist()]


def test_class_folders_are_split_by_val_fraction_stratified_by_class(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "shapes", splits=(), per_class=10)

    data = _build(tmp_path, val_fraction=0.2)

    assert (data.info.layout, data.info.classes) == ("class_folders", CLASSES)
    assert (data.info.train_samples, data.info.val_samples, data.info.test_samples) == (24, 6, 0)
    assert Counter(_labels(data.val)) == {0: 2, 1: 2, 2: 2}
    assert data.test is None


def test_the_carved_val_split_is_fixed_by_the_seed(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "shapes", splits=(), per_class=10)

    def val_images(seed: int) -> list[float]:
        data = _build(tmp_path, seed=seed, normalize="none")
        return [float(image.sum()) for images, _ in data.val for image in images]

    assert val_images(1) == val_images(1)
    assert val_images(1) != val_images(2)


def test_train_val_and_test_folders_are_the_three_splits(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "shapes", per_class=4)

    data = _build(tmp_path, batch_size=5)

    assert (data.info.layout, data.info.classes) == ("split_folders", CLASSES)
    assert (data.info.train_samples, data.info.val_samples, data.info.test_samples) == (12, 12, 12)
    assert Counter(_labels(data.test)) == {0: 4, 1: 4, 2: 4}
    assert data.test is not None and len(data.test) == 3


@pytest.mark.parametrize("val_folder", ["valid", "validation"])
def test_train_with_a_valid_or_validation_folder(tmp_path: Path, val_folder: str) -> None:
    make_image_folder(tmp_path / "shapes", splits=("train", val_folder), per_class=3)

    data = _build(tmp_path)

    assert (data.info.train_samples, data.info.val_samples, data.info.test_samples) == (9, 9, 0)
    assert data.test is None


def test_train_and_test_without_val_carve_val_from_train_stratified(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "shapes", splits=("train", "test"), per_class=10)

    data = _build(tmp_path, val_fraction=0.3)

    assert (data.info.train_samples, data.info.val_samples, data.info.test_samples) == (21, 9, 30)
    assert Counter(_labels(data.val)) == {0: 3, 1: 3, 2: 3}


def test_another_folder_next_to_train_is_an_error_naming_it(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "shapes", splits=("train", "junk"), per_class=2)

    with pytest.raises(DataError, match=r"also has junk/"):
        _build(tmp_path)


def test_an_empty_class_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "shapes", splits=("train",), per_class=2)
    (tmp_path / "shapes" / "train" / "hexagon").mkdir()

    with pytest.raises(DataError, match=r"no images found in class folder\(s\) train/hexagon/"):
        _build(tmp_path)


def test_a_class_only_in_test_is_an_error_naming_it(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "shapes", splits=("train",), per_class=2)
    make_image_folder(tmp_path / "shapes", splits=("test",), classes=("circle", "star"), per_class=2)

    with pytest.raises(DataError, match=r"test/ has classes that train/ lacks: star"):
        _build(tmp_path)


@pytest.mark.parametrize(("cache", "num_workers"), [("memory", 0), ("memory", 2), ("none", 0), ("none", 2)])
def test_a_truncated_jpeg_is_a_data_error_naming_it(tmp_path: Path, cache: str, num_workers: int) -> None:
    make_image_folder(tmp_path / "shapes", splits=("train", "val"), per_class=2)
    write_truncated_jpeg(tmp_path / "shapes" / "val" / "square" / "broken.jpg")

    # Without the cache nothing is decoded up front: the batch that holds it fails, in a DataLoader
    # worker or not, with the message alone (no worker traceback in what the job stores).
    with pytest.raises(DataError, match=r"val/square/broken\.jpg") as raised:
        data = _build(tmp_path, cache=cache, num_workers=num_workers)
        list(data.val)
    assert "Traceback" not in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_a_file_that_is_not_an_image_is_a_data_error_naming_it(tmp_path: Path, cache: str) -> None:
    make_image_folder(tmp_path / "shapes", splits=("train", "val"), per_class=2)
    write_not_an_image(tmp_path / "shapes" / "train" / "circle" / "page.jpg")

    # The memory cache reads every header to size itself: this file fails then, before training.
    with pytest.raises(DataError, match=r"cannot read image train/circle/page\.jpg .*skip_bad_images"):
        data = _build(tmp_path, cache=cache)
        list(data.train)


def test_skip_bad_images_leaves_them_out_and_counts_them(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "shapes", splits=("train", "val"), per_class=3)
    write_truncated_jpeg(tmp_path / "shapes" / "train" / "circle" / "broken.jpg")
    write_not_an_image(tmp_path / "shapes" / "val" / "triangle" / "page.png")

    data = _build(tmp_path, skip_bad_images=True, cache="none")

    assert data.info.skipped_count == 2
    assert data.info.skipped_files == ["train/circle/broken.jpg", "val/triangle/page.png"]
    assert (data.info.train_samples, data.info.val_samples) == (9, 9)
    assert len(_labels(data.train)) == 9  # and no batch trips over them


def test_skipped_files_listed_are_capped_but_counted(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "shapes", splits=("train",), per_class=2)
    for number in range(MAX_SKIPPED_FILES_LISTED + 5):
        write_not_an_image(tmp_path / "shapes" / "train" / "square" / f"bad{number:03d}.jpg")

    data = _build(tmp_path, skip_bad_images=True)

    assert data.info.skipped_count == MAX_SKIPPED_FILES_LISTED + 5
    assert len(data.info.skipped_files) == MAX_SKIPPED_FILES_LISTED


def test_digits_report_their_classes_and_eval_transform(tmp_path: Path) -> None:
    hp = Hyperparameters(dataset="digits", image_size=12)
    data = build_data(hp, tmp_path, torch.device("cpu"))

    assert (data.info.layout, data.info.classes) == ("digits", [str(d) for d in range(10)])
    assert (data.info.train_samples, data.info.val_samples, data.info.test_samples) == (1438, 359, 0)
    assert data.eval_transform.model_dump() == {
        "image_size": 12,
        "resize_size": 12,
        "channels": 1,
        "mean": None,
        "std": None,
    }
    assert data.test is None


def test_fake_data_names_its_classes(tmp_path: Path) -> None:
    hp = Hyperparameters(dataset="fake", fake_samples=40, fake_num_classes=3, fake_channels=1)
    data = build_data(hp, tmp_path, torch.device("cpu"))

    assert (data.info.layout, data.info.classes) == ("fake", ["class_0", "class_1", "class_2"])
    assert (data.eval_transform.image_size, data.eval_transform.channels) == (32, 1)
