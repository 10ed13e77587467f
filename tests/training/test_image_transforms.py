"""Image-folder transforms (augment, normalize) and the memory cache of decoded images."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import torch

from app.hyperparameters import Hyperparameters
from tests.support.images import make_image_folder, write_grayscale_image
from worker.training import ConfigError, image_cache
from worker.training.data import Data, build_data
from worker.training.image_cache import ImageFiles
from worker.training.loaders import DeviceLoader, Loader
from worker.training.transforms import IMAGENET_MEAN, IMAGENET_STD, decode_resized


def _build(data_dir: Path, **hyperparameters: Any) -> Data:
    settings = {"dataset": "imagefolder", "dataset_path": "shapes", "num_workers": 0, "image_size": 16}
    return build_data(Hyperparameters(**{**settings, **hyperparameters}), data_dir, torch.device("cpu"))


def _images(loader: Loader) -> torch.Tensor:
    return torch.cat([images for images, _ in loader])


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    make_image_folder(tmp_path / "shapes", splits=("train", "val"), per_class=4, size=40)
    return tmp_path


@pytest.mark.parametrize("augment", ["none", "light", "standard"])
def test_every_augment_serves_image_size_batches(shapes: Path, augment: str) -> None:
    data = _build(shapes, augment=augment, normalize="none", batch_size=5)

    images = _images(data.train)
    assert images.shape == (12, 3, 16, 16) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0


def test_light_augmentation_differs_between_epochs_and_none_does_not(shapes: Path) -> None:
    def two_epochs(augment: str) -> tuple[torch.Tensor, torch.Tensor]:
        data = _build(shapes, augment=augment)
        sums = []
        for epoch in range(2):
            data.train.set_epoch(epoch)
            # Per-image sums, sorted: the same multiset whatever the shuffle did.
            sums.append(_images(data.train).sum(dim=(1, 2, 3)).sort().values)
        return sums[0], sums[1]

    assert not torch.equal(*two_epochs("light"))
    assert torch.equal(*two_epochs("none"))


def test_evaluation_is_deterministic_resize_then_center_crop(shapes: Path) -> None:
    data = _build(shapes, normalize="none", augment="standard")

    assert (data.eval_transform.image_size, data.eval_transform.resize_size) == (16, 18)
    first = _images(data.val)
    assert torch.equal(first, _images(data.val))
    expected = decode_resized(shapes / "shapes" / "val" / "circle" / "000.png", 18)[:, 1:17, 1:17]
    torch.testing.assert_close(first[0], expected.float() / 255)


def test_imagenet_normalisation_is_reported_and_applied(shapes: Path) -> None:
    plain = _images(_build(shapes, normalize="none").val)
    data = _build(shapes)  # imagefolder's default

    assert (data.eval_transform.mean, data.eval_transform.std) == (list(IMAGENET_MEAN), list(IMAGENET_STD))
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(_images(data.val), (plain - mean) / std)


def test_dataset_normalisation_uses_the_train_splits_statistics(shapes: Path) -> None:
    data = _build(shapes, normalize="dataset")

    train_files = sorted((shapes / "shapes" / "train").glob("*/*"))
    pixels = torch.cat([decode_resized(path, 18).reshape(3, -1) for path in train_files], dim=1) / 255
    assert data.eval_transform.mean == pytest.approx(pixels.mean(dim=1).tolist(), abs=1e-5)
    assert data.eval_transform.std == pytest.approx(pixels.std(dim=1, correction=0).tolist(), abs=1e-5)
    # Normalised with them, the training inputs come out near zero mean and unit spread.
    images = _images(_build(shapes, normalize="dataset", augment="none").train)
    assert images.mean(dim=(0, 2, 3)).abs().max() < 0.2
    assert (images.std(dim=(0, 2, 3)) - 1).abs().max() < 0.2


def test_grayscale_images_become_three_channels(shapes: Path) -> None:
    write_grayscale_image(shapes / "shapes" / "val" / "square" / "grey.png", level=128)

    data = _build(shapes, normalize="none")

    images = _images(data.val)
    assert (data.eval_transform.channels, images.shape[1]) == (3, 3)
    assert any(torch.allclose(image, torch.full_like(image, 128 / 255)) for image in images)


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file decoded to pixels, in this process (the tests that use it load with num_workers 0)."""
    files: list[str] = []

    def counting_decode(path: Path, resize_size: int) -> torch.Tensor:
        files.append(str(path))
        return decode_resized(path, resize_size)

    monkeypatch.setattr(image_cache, "decode_resized", counting_decode)
    return files


def test_the_memory_cache_decodes_each_file_once_in_the_first_epoch(shapes: Path, decoded: list[str]) -> None:
    data = _build(shapes, cache="memory")
    # Training starts before any file is decoded: the cache is sized from the files' headers.
    assert decoded == []
    for epoch in range(1, 4):
        data.train.set_epoch(epoch)
        _images(data.train)
        _images(data.val)
        if epoch == 1:
            assert len(decoded) == len(set(decoded)) == 24

    assert len(decoded) == 24


def test_cached_images_are_the_decoded_ones_and_augmentation_still_differs_per_epoch(shapes: Path) -> None:
    settings: dict[str, Any] = {"augment": "light", "normalize": "none"}
    cached, uncached = _build(shapes, cache="memory", **settings), _build(shapes, cache="none", **settings)
    by_epoch = []
    for epoch in (1, 2):
        cached.train.set_epoch(epoch)
        uncached.train.set_epoch(epoch)
        by_epoch.append(_images(cached.train))
        assert torch.equal(by_epoch[-1], _images(uncached.train))
        assert torch.equal(_images(cached.val), _images(uncached.val))
    assert not torch.equal(by_epoch[0], by_epoch[1])


def test_without_the_cache_every_epoch_decodes_again(shapes: Path, decoded: list[str]) -> None:
    data = _build(shapes, cache="none", normalize="none")
    for epoch in range(2):
        data.train.set_epoch(epoch)
        _images(data.train)

    assert len(decoded) == 2 * 12


def test_cache_auto_caches_only_what_fits_the_budget(
    shapes: Path, decoded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def decoded_by_a_second_epoch() -> int:
        data = _build(shapes, cache="auto")
        _images(data.train)
        decoded.clear()
        data.train.set_epoch(2)
        _images(data.train)
        return len(decoded)

    assert decoded_by_a_second_epoch() == 0
    monkeypatch.setattr(image_cache, "MEMORY_CACHE_MAX_BYTES", 1000)  # under one 3x18x21 image
    assert decoded_by_a_second_epoch() == 12


def test_dataloader_workers_serve_the_cached_images(shapes: Path) -> None:
    settings: dict[str, Any] = {"cache": "memory", "augment": "none", "batch_size": 5}

    in_process = _images(_build(shapes, num_workers=0, **settings).train)
    in_workers = _images(_build(shapes, num_workers=2, **settings).train)

    assert torch.equal(in_process, in_workers)


def test_images_dataloader_workers_decode_are_cached_for_every_process(shapes: Path) -> None:
    data = _build(shapes, cache="memory", num_workers=2, batch_size=5)
    train = data.train
    assert isinstance(train, DeviceLoader) and isinstance(train.dataset, ImageFiles)
    cache = train.dataset.cache
    assert cache is not None and not cache.filled.any()

    _images(train)

    # Filled by the workers, seen here: the next epoch's workers, or this process, decode nothing.
    assert cache.filled.all()


def test_where_workers_cannot_be_forked_the_cache_is_in_memory_they_can_be_sent(
    shapes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    settings: dict[str, Any] = {"cache": "memory", "augment": "none"}
    data = _build(shapes, **settings)
    assert isinstance(data.train, DeviceLoader) and isinstance(data.train.dataset, ImageFiles)
    cache = data.train.dataset.cache
    assert cache is not None and cache.pixels.is_shared() and cache.filled.is_shared()

    served = _images(data.train)

    assert cache.filled.all()
    monkeypatch.undo()
    assert torch.equal(served, _images(_build(shapes, **settings).train))


def test_cache_memory_that_could_not_fit_is_refused_naming_the_sizes(
    shapes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_cache, "_available_memory_bytes", lambda: 10_000)
    with pytest.raises(ConfigError, match=r"cache 'memory' would hold about 0 MiB .* use cache 'auto'"):
        _build(shapes, cache="memory")
    assert _images(_build(shapes, cache="auto").train).shape[0] > 0  # auto decodes every epoch instead
