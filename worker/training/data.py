"""Datasets as loaders: `build_data(hp, data_dir, device)` is the one entry point."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from app.hyperparameters import Hyperparameters

from .datasets import DEFAULT_IMAGEFOLDER_SIZE, InMemory, load_imagefolder, load_torchvision, split_indices
from .loaders import DeviceLoader, Loader, TensorLoader

logger = logging.getLogger(__name__)

DEFAULT_FAKE_SIZE = 32
FAKE_PROTOTYPE_SIZE = 4
FAKE_NOISE_STD = 0.25


@dataclass(frozen=True)
class Data:
    train: Loader
    val: Loader
    num_classes: int
    in_channels: int
    image_size: int
    train_samples: int
    val_samples: int


def build_data(hp: Hyperparameters, data_dir: Path, device: torch.device) -> Data:
    """Training and validation loaders for `hp.dataset`, yielding batches on `device`."""
    if hp.dataset == "imagefolder":
        train, val, classes = load_imagefolder(hp, data_dir)
        return Data(
            train=DeviceLoader(
                train,
                batch_size=hp.batch_size,
                device=device,
                shuffle=True,
                num_workers=hp.num_workers,
                seed=hp.seed,
            ),
            val=DeviceLoader(
                val, batch_size=hp.batch_size, device=device, shuffle=False, num_workers=hp.num_workers
            ),
            num_classes=len(classes),
            in_channels=3,
            image_size=hp.image_size or DEFAULT_IMAGEFOLDER_SIZE,
            train_samples=len(train),  # type: ignore[arg-type]
            val_samples=len(val),  # type: ignore[arg-type]
        )

    if hp.dataset == "digits":
        arrays = load_digits_split(hp)
    elif hp.dataset == "fake":
        arrays = make_fake_split(hp)
    else:
        arrays = load_torchvision(hp, data_dir)
    native_size = arrays.train_images.shape[-1]
    size = hp.image_size or native_size
    resize_to = size if size != native_size else None
    logger.info(
        "%s: %d train, %d val samples, %d classes, %dx%d",
        hp.dataset,
        len(arrays.train_labels),
        len(arrays.val_labels),
        arrays.num_classes,
        size,
        size,
    )
    return Data(
        train=TensorLoader(
            arrays.train_images,
            arrays.train_labels,
            batch_size=hp.batch_size,
            device=device,
            shuffle=True,
            seed=hp.seed,
            resize_to=resize_to,
        ),
        val=TensorLoader(
            arrays.val_images,
            arrays.val_labels,
            batch_size=hp.batch_size,
            device=device,
            shuffle=False,
            resize_to=resize_to,
        ),
        num_classes=arrays.num_classes,
        in_channels=arrays.train_images.shape[1],
        image_size=size,
        train_samples=len(arrays.train_labels),
        val_samples=len(arrays.val_labels),
    )


def _split(images: torch.Tensor, labels: torch.Tensor, num_classes: int, hp: Hyperparameters) -> InMemory:
    train_index, val_index = split_indices(len(labels), hp.val_fraction, hp.seed)
    return InMemory(
        train_images=images[train_index],
        train_labels=labels[train_index],
        val_images=images[val_index],
        val_labels=labels[val_index],
        num_classes=num_classes,
    )


def load_digits_split(hp: Hyperparameters) -> InMemory:
    """scikit-learn's 1,797 8x8 digits (bundled, never downloaded), scaled to [0, 1]."""
    from sklearn.datasets import load_digits  # slow import, only needed here

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    labels = torch.as_tensor(digits.target, dtype=torch.int64)
    return _split(images, labels, 10, hp)


def make_fake_split(hp: Hyperparameters) -> InMemory:
    """Seeded synthetic images that a model can learn: each class is a fixed prototype plus noise.

    Prototypes are drawn at 4x4 and upsampled, so the class signal is coarse and
    survives pooling and resizing. Stored as uint8 to keep large requests at a
    quarter of the float memory.
    """
    generator = torch.Generator().manual_seed(hp.seed)
    size = hp.image_size or DEFAULT_FAKE_SIZE
    num_classes, channels = hp.fake_num_classes, hp.fake_channels
    prototypes = torch.rand(
        num_classes, channels, FAKE_PROTOTYPE_SIZE, FAKE_PROTOTYPE_SIZE, generator=generator
    )
    prototypes = F.interpolate(prototypes, size=(size, size), mode="bilinear", align_corners=False)
    labels = torch.arange(hp.fake_samples) % num_classes
    noise = torch.randn(hp.fake_samples, channels, size, size, generator=generator).mul_(FAKE_NOISE_STD)
    images = noise.add_(prototypes[labels]).clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return _split(images, labels, num_classes, hp)
