from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from app.hyperparameters import Hyperparameters
from worker.training import DataError
from worker.training.data import Data, build_data


def _build(data_dir: Path, **hyperparameters: Any) -> Data:
    settings = {"dataset": "imagefolder", "num_workers": 0, **hyperparameters}
    return build_data(Hyperparameters(**settings), data_dir, torch.device("cpu"))


def _all(loader: Any) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def _write_images(folder: Path, counts: dict[str, int]) -> None:
    for index, (label, count) in enumerate(counts.items()):
        (folder / label).mkdir(parents=True)
        for number in range(count):
            # Grayscale files too: ImageFolder's loader converts everything to RGB.
            mode = "L" if number == 0 else "RGB"
            Image.new(mode, (10, 6), color=40 * index if mode == "L" else (40 * index, 0, 255)).save(
                folder / label / f"{number}.png"
            )


def test_imagefolder_uses_train_and_val_subfolders(tmp_path: Path) -> None:
    _write_images(tmp_path / "pets" / "train", {"cat": 4, "dog": 3})
    _write_images(tmp_path / "pets" / "val", {"cat": 2, "dog": 2})

    data = _build(tmp_path, dataset_path="pets", image_size=16, batch_size=4, num_workers=1, normalize="none")

    assert (data.train_samples, data.val_samples, data.num_classes) == (7, 4, 2)
    assert (data.in_channels, data.image_size) == (3, 16)
    images, labels = _all(data.train)
    assert images.shape == (7, 3, 16, 16)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert sorted(labels.tolist()) == [0, 0, 0, 0, 1, 1, 1]
    data.train.set_epoch(2)
    first = _all(data.train)[0]
    data.train.set_epoch(2)
    assert torch.equal(first, _all(data.train)[0])


def test_imagefolder_without_train_and_val_is_split_by_val_fraction(tmp_path: Path) -> None:
    _write_images(tmp_path / "shapes", {"round": 5, "square": 5})

    data = _build(tmp_path, dataset_path="shapes", image_size=8)

    assert (data.train_samples, data.val_samples, data.num_classes) == (8, 2, 2)


def test_imagefolder_normalises_with_imagenet_statistics_by_default(tmp_path: Path) -> None:
    _write_images(tmp_path / "shapes", {"round": 2, "square": 2})
    settings: dict[str, Any] = {"dataset_path": "shapes", "image_size": 8}

    plain = _all(_build(tmp_path, normalize="none", **settings).val)[0]
    normalised = _all(_build(tmp_path, **settings).val)[0]

    blue_mean, blue_std = 0.406, 0.225
    torch.testing.assert_close(normalised[:, 2], (plain[:, 2] - blue_mean) / blue_std)


def test_imagefolder_class_missing_from_val_is_fine_and_keeps_trains_index(tmp_path: Path) -> None:
    _write_images(tmp_path / "pets" / "train", {"cat": 2, "dog": 2})
    _write_images(tmp_path / "pets" / "val", {"dog": 2})

    data = _build(tmp_path, dataset_path="pets", image_size=8)

    assert data.info.classes == ["cat", "dog"]
    assert _all(data.val)[1].tolist() == [1, 1]


def test_imagefolder_class_only_in_val_is_a_data_error(tmp_path: Path) -> None:
    _write_images(tmp_path / "pets" / "train", {"cat": 2})
    _write_images(tmp_path / "pets" / "val", {"cat": 2, "dog": 2})

    with pytest.raises(DataError, match=r"val/ has classes that train/ lacks: dog"):
        _build(tmp_path, dataset_path="pets")


def test_imagefolder_path_that_does_not_exist_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        _build(tmp_path, dataset_path="nowhere")


def test_imagefolder_without_images_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "cat" / "notes.txt").write_text("not an image")

    with pytest.raises(DataError, match="no images found"):
        _build(tmp_path, dataset_path="empty")


def test_imagefolder_symlink_leading_outside_the_data_folder_is_refused(tmp_path: Path) -> None:
    data_dir, outside = tmp_path / "data", tmp_path / "secrets"
    _write_images(outside, {"a": 2, "b": 2})
    data_dir.mkdir()
    (data_dir / "innocent").symlink_to(outside, target_is_directory=True)

    with pytest.raises(DataError, match=r"dataset_path 'innocent' leads to .* outside the data folder"):
        _build(data_dir, dataset_path="innocent")


def test_imagefolder_class_folder_linking_outside_the_data_folder_is_refused(tmp_path: Path) -> None:
    data_dir, outside = tmp_path / "data", tmp_path / "secrets"
    _write_images(outside, {"a": 2})
    _write_images(data_dir / "mixed", {"b": 2})
    (data_dir / "mixed" / "a").symlink_to(outside / "a", target_is_directory=True)

    with pytest.raises(DataError, match="outside the data folder"):
        _build(data_dir, dataset_path="mixed")
