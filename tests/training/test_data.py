from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import pytest
import torch

from app.hyperparameters import Hyperparameters
from worker.training import DataError
from worker.training.data import Data, build_data
from worker.training.datasets import split_indices
from worker.training.loaders import DeviceLoader

CPU = torch.device("cpu")


def _build(data_dir: Path | None = None, **hyperparameters: Any) -> Data:
    return build_data(Hyperparameters(**hyperparameters), data_dir or Path("/nonexistent"), CPU)


def _all(loader: Any) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def test_digits_are_single_channel_8x8_floats_in_the_unit_range_split_by_val_fraction() -> None:
    data = _build(dataset="digits", val_fraction=0.25, batch_size=100)

    assert (data.num_classes, data.in_channels, data.image_size) == (10, 1, 8)
    assert (data.train_samples, data.val_samples) == (1797 - 449, 449)
    assert len(data.train) == math.ceil(1348 / 100)  # the last, partial batch is kept
    images, labels = _all(data.train)
    assert images.shape == (1348, 1, 8, 8)
    assert (images.dtype, labels.dtype) == (torch.float32, torch.int64)
    assert images.min() == 0.0
    assert images.max() == 1.0
    assert set(labels.tolist()) == set(range(10))


def test_digits_split_and_shuffle_are_fixed_by_the_seed_and_the_epoch() -> None:
    first, again, other_seed = _build(seed=1), _build(seed=1), _build(seed=2)

    assert torch.equal(_all(first.val)[1], _all(again.val)[1])
    assert not torch.equal(_all(first.val)[1], _all(other_seed.val)[1])
    first.train.set_epoch(3)
    again.train.set_epoch(3)
    assert torch.equal(_all(first.train)[0], _all(again.train)[0])
    again.train.set_epoch(4)
    assert not torch.equal(_all(first.train)[1], _all(again.train)[1])
    assert torch.equal(_all(first.val)[1], _all(first.val)[1])  # validation is never shuffled


def test_split_keeps_at_least_one_sample_on_each_side() -> None:
    assert [len(part) for part in split_indices(10, 0.01, seed=0)] == [9, 1]
    assert [len(part) for part in split_indices(10, 0.99, seed=0)] == [1, 9]
    train, val = split_indices(100, 0.2, seed=0)
    assert sorted(torch.cat([train, val]).tolist()) == list(range(100))


def test_a_lone_last_training_sample_is_dropped_so_batchnorm_never_sees_a_batch_of_one() -> None:
    data = _build(dataset="fake", fake_samples=22, val_fraction=0.05, batch_size=10)  # 21 train samples

    assert data.train_samples == 21
    assert [len(y) for _, y in data.train] == [10, 10]
    assert [len(y) for _, y in data.val] == [1]


def test_fake_data_has_the_requested_shape_and_a_class_signal_a_model_can_learn() -> None:
    data = _build(dataset="fake", fake_samples=200, fake_channels=1, fake_num_classes=4, image_size=12)

    assert (data.num_classes, data.in_channels, data.image_size) == (4, 1, 12)
    assert (data.train_samples, data.val_samples) == (160, 40)
    train_images, train_labels = _all(data.train)
    val_images, val_labels = _all(data.val)
    assert train_images.shape == (160, 1, 12, 12)
    assert train_images.min() >= 0.0 and train_images.max() <= 1.0
    # A nearest-class-mean classifier, fitted on train, must beat chance (25%) by far on val.
    means = torch.stack([train_images[train_labels == c].mean(dim=0) for c in range(4)]).flatten(1)
    predicted = torch.cdist(val_images.flatten(1), means).argmin(dim=1)
    assert (predicted == val_labels).float().mean() > 0.9


def test_fake_data_is_the_same_for_the_same_hyperparameters_and_stored_as_uint8() -> None:
    request = {"dataset": "fake", "fake_samples": 300, "fake_channels": 3, "image_size": 40, "seed": 5}
    first, again, other_seed = _build(**request), _build(**request), _build(**{**request, "seed": 6})

    for part in ("train", "val"):
        loader, same, other = getattr(first, part), getattr(again, part), getattr(other_seed, part)
        assert loader.images.dtype == torch.uint8  # a quarter of the float memory
        assert torch.equal(loader.images, same.images) and torch.equal(loader.labels, same.labels)
        assert not torch.equal(loader.images, other.images)


def _write_idx(path: Path, array: np.ndarray) -> None:
    # IDX: two zero bytes, a type code (0x08 = ubyte), the number of dimensions, then big-endian int32 sizes.
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _write_mnist(raw: Path, train: int, test: int) -> np.ndarray:
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8)
    _write_idx(raw / "train-images-idx3-ubyte", train_images)
    _write_idx(raw / "train-labels-idx1-ubyte", np.arange(train) % 10)
    test_images = rng.integers(0, 256, size=(test, 28, 28), dtype=np.uint8)
    _write_idx(raw / "t10k-images-idx3-ubyte", test_images)
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(test) % 10)
    return test_images


@pytest.mark.parametrize(("dataset", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_style_sets_load_from_idx_files_in_the_data_folder(
    tmp_path: Path, dataset: str, folder: str
) -> None:
    written = _write_mnist(tmp_path / folder / "raw", train=12, test=6)

    data = _build(tmp_path, dataset=dataset, batch_size=5)

    assert (data.train_samples, data.val_samples, data.num_classes) == (12, 6, 10)
    assert (data.in_channels, data.image_size) == (1, 28)
    assert len(data.train) == 3
    assert data.train.images.dtype == torch.uint8  # type: ignore[attr-defined]
    val_images, val_labels = _all(data.val)
    assert val_images.shape == (6, 1, 28, 28)
    assert val_labels.tolist() == [0, 1, 2, 3, 4, 5]  # the test split, in file order
    assert torch.equal(val_images, torch.from_numpy(written).float().div(255).unsqueeze(1))
    train_images, _ = _all(data.train)
    assert train_images.shape == (12, 1, 28, 28)


def test_in_memory_batches_are_resized_to_image_size(tmp_path: Path) -> None:
    _write_mnist(tmp_path / "MNIST" / "raw", train=4, test=2)

    data = _build(tmp_path, dataset="mnist", image_size=16)

    assert data.image_size == 16
    images, _ = _all(data.train)
    assert images.shape == (4, 1, 16, 16)


def test_missing_mnist_files_are_a_data_error_naming_the_folder_and_the_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as raised:
        _build(tmp_path, dataset="mnist")

    message = str(raised.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message
    assert '"download": true' in message
    assert raised.value.reason == "data_error"


def test_a_failed_download_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise URLError("no network")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", no_network)

    with pytest.raises(DataError, match="could not download dataset 'mnist'") as raised:
        _build(tmp_path, dataset="mnist", download=True)
    assert str(tmp_path / "MNIST" / "raw") in str(raised.value)


def test_missing_cifar10_is_a_data_error_naming_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError) as raised:
        _build(tmp_path, dataset="cifar10")

    assert str(tmp_path / "cifar-10-batches-py") in str(raised.value)
    assert "data_batch_1" in str(raised.value)


def test_an_in_memory_epoch_can_start_at_a_batch_and_serves_the_rest_of_the_same_order() -> None:
    data = _build(dataset="digits", batch_size=100)
    data.train.set_epoch(3)
    whole = list(data.train)

    data.train.set_epoch(3, start_batch=4)
    rest = list(data.train)

    assert len(data.train) == len(whole)  # a whole epoch, however much is skipped
    assert len(rest) == len(whole) - 4
    for (images, labels), (want_images, want_labels) in zip(rest, whole[4:], strict=True):
        assert torch.equal(images, want_images) and torch.equal(labels, want_labels)


class _IndexImages(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """Image i is filled with the value i; every index read is noted."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read: list[int] = []

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        self.read.append(index)
        return torch.full((1, 2, 2), float(index)), index % 3


def _indices(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[list[int]]:
    return [images[:, 0, 0, 0].int().tolist() for images, _ in batches]


def test_a_dataset_epoch_can_start_at_a_batch_without_reading_the_samples_it_skips() -> None:
    dataset = _IndexImages(21)  # batches of 4 leave a lone last sample, which is dropped: 5 batches
    loader = DeviceLoader(dataset, batch_size=4, device=CPU, shuffle=True, num_workers=0, seed=7)
    loader.set_epoch(2)
    whole = _indices(list(loader))
    dataset.read.clear()

    loader.set_epoch(2, start_batch=3)
    rest = _indices(list(loader))

    assert len(loader) == len(whole) == 5  # a whole epoch, however much is skipped
    assert rest == whole[3:]
    assert sorted(dataset.read) == sorted(index for batch in rest for index in batch)
    loader.set_epoch(3)
    assert len(list(loader)) == 5  # the next epoch is whole again
