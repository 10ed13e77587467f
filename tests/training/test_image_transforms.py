"""Image-folder transforms (augment, normalize) and the memory cache of decoded images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from app.hyperparameters import Hyperparameters
from tests.support.images import make_image_folder, write_grayscale_image
from worker.training import ConfigError, image_cache
from worker.training.data import Data, build_data
from worker.training.loaders import Loader
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


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every file PIL opens, in this process (the tests that use it load with num_workers 0)."""
    files: list[str] = []
    real_open = Image.open

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> Image.Image:
        files.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    yield files


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


def test_the_memory_cache_decodes_each_file_once(shapes: Path, opened: list[str]) -> None:
    data = _build(shapes, cache="memory")
    # Building reads each file (its header for the size estimate, then its pixels), and never again.
    assert len(set(opened)) == 24
    opened.clear()
    for epoch in range(2):
        data.train.set_epoch(epoch)
        _images(data.train)
        _images(data.val)

    assert opened == []


def test_without_the_cache_every_epoch_decodes_again(shapes: Path, opened: list[str]) -> None:
    data = _build(shapes, cache="none", normalize="none")
    for epoch in range(2):
        data.train.set_epoch(epoch)
        _images(data.train)

    assert len(opened) == 2 * 12


def test_cache_auto_caches_only_what_fits_the_budget(
    shapes: Path, opened: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def opened_by_an_epoch() -> int:
        data = _build(shapes, cache="auto")
        opened.clear()  # building reads headers for the estimate and decodes to fill the cache
        _images(data.train)
        return len(opened)

    assert opened_by_an_epoch() == 0
    monkeypatch.setattr(image_cache, "MEMORY_CACHE_MAX_BYTES", 1000)  # under one 3x18x21 image
    assert opened_by_an_epoch() == 12


def test_dataloader_workers_serve_the_cached_images(shapes: Path) -> None:
    settings: dict[str, Any] = {"cache": "memory", "augment": "none", "batch_size": 5}

    in_process = _images(_build(shapes, num_workers=0, **settings).train)
    in_workers = _images(_build(shapes, num_workers=2, **settings).train)

    assert torch.equal(in_process, in_workers)


def test_cache_memory_that_could_not_fit_is_refused_naming_the_sizes(
    shapes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_cache, "_available_memory_bytes", lambda: 10_000)
    with pytest.raises(ConfigError, match=r"cache 'memory' would hold about 0 MiB .* use cache 'auto'"):
        _build(shapes, cache="memory")
    assert _images(_build(shapes, cache="auto").train).shape[0] > 0  # auto decodes every epoch instead
