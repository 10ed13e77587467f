"""Datasets as loaders: `build_data(hp, data_dir, device, ranks)` is the one entry point."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from app.contract import DatasetInfo, EvalTransform
from app.hyperparameters import FAKE_DEFAULT_SIZE, Hyperparameters

from .datasets import InMemory, load_torchvision, split_indices
from .distributed import ONE_RANK, Ranks
from .imagefolder import ImageFiles, load_imagefolder
from .loaders import DeviceLoader, Loader, TensorLoader

logger = logging.getLogger(__name__)

FAKE_PROTOTYPE_SIZE = 4
FAKE_NOISE_STD = 0.25
# float32 working memory per generated chunk: larger chunks measured slower, and glibc keeps
# more of them resident after they are freed.
FAKE_CHUNK_BYTES = 1024**2


@dataclass(frozen=True)
class Data:
    train: Loader
    val: Loader
    num_classes: int
    in_channels: int
    image_size: int
    train_samples: int
    val_samples: int
    info: DatasetInfo  # the classes in index order, the layout and the splits' sizes
    eval_transform: EvalTransform  # what validation, test and inference apply to an image
    test: Loader | None  # the test split, sharded like val; None without one


def build_data(hp: Hyperparameters, data_dir: Path, device: torch.device, ranks: Ranks = ONE_RANK) -> Data:
    """Training, validation and test loaders for `hp.dataset`, yielding batches on `device`; each
    rank's loaders serve its shard, of `hp.batch_size` samples a batch (the batch size is per
    device). The sample counts are the whole splits'."""
    if hp.dataset == "imagefolder":
        return _imagefolder_data(hp, data_dir, device, ranks)

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
            ranks=ranks,
        ),
        val=TensorLoader(
            arrays.val_images,
            arrays.val_labels,
            batch_size=hp.batch_size,
            device=device,
            shuffle=False,
            resize_to=resize_to,
            ranks=ranks,
        ),
        num_classes=arrays.num_classes,
        in_channels=arrays.train_images.shape[1],
        image_size=size,
        train_samples=len(arrays.train_labels),
        val_samples=len(arrays.val_labels),
        info=DatasetInfo(
            layout=hp.dataset,
            classes=arrays.classes,
            train_samples=len(arrays.train_labels),
            val_samples=len(arrays.val_labels),
            test_samples=0,
        ),
        # Already [0, 1] floats once batched: a resize and nothing else.
        eval_transform=EvalTransform(
            image_size=size, resize_size=size, channels=arrays.train_images.shape[1], mean=None, std=None
        ),
        test=None,
    )


def _imagefolder_data(hp: Hyperparameters, data_dir: Path, device: torch.device, ranks: Ranks) -> Data:
    splits = load_imagefolder(hp, data_dir, world_size=ranks.world_size)

    def loader(dataset: ImageFiles, *, shuffle: bool) -> DeviceLoader:
        return DeviceLoader(
            dataset,
            batch_size=hp.batch_size,
            device=device,
            shuffle=shuffle,
            num_workers=hp.num_workers,
            seed=hp.seed,
            ranks=ranks,
        )

    return Data(
        train=loader(splits.train, shuffle=True),
        val=loader(splits.val, shuffle=False),
        num_classes=len(splits.info.classes),
        in_channels=splits.eval_transform.channels,
        image_size=splits.eval_transform.image_size,
        train_samples=splits.info.train_samples,
        val_samples=splits.info.val_samples,
        info=splits.info,
        eval_transform=splits.eval_transform,
        test=loader(splits.test, shuffle=False) if splits.test is not None else None,
    )


def _split(images: torch.Tensor, labels: torch.Tensor, classes: list[str], hp: Hyperparameters) -> InMemory:
    train_index, val_index = split_indices(len(labels), hp.val_fraction, hp.seed)
    return InMemory(
        train_images=images[train_index],
        train_labels=labels[train_index],
        val_images=images[val_index],
        val_labels=labels[val_index],
        classes=classes,
    )


def load_digits_split(hp: Hyperparameters) -> InMemory:
    """scikit-learn's 1,797 8x8 digits (bundled, never downloaded), scaled to [0, 1]."""
    from sklearn.datasets import load_digits  # slow import, only needed here

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    labels = torch.as_tensor(digits.target, dtype=torch.int64)
    return _split(images, labels, [str(digit) for digit in range(10)], hp)


def make_fake_split(hp: Hyperparameters) -> InMemory:
    """Seeded synthetic images that a model can learn: each class is a fixed prototype plus noise.

    Prototypes are drawn at 4x4 and upsampled, so the class signal is coarse and
    survives pooling and resizing. The images are generated a chunk at a time straight
    into their uint8 train and val tensors, so beyond those and the labels only a few
    MiB of float32 are ever held (app.fake_data.fake_data_peak_bytes counts on that).
    """
    generator = torch.Generator().manual_seed(hp.seed)
    size = hp.image_size or FAKE_DEFAULT_SIZE
    num_classes = hp.fake_num_classes
    prototypes = torch.rand(
        num_classes, hp.fake_channels, FAKE_PROTOTYPE_SIZE, FAKE_PROTOTYPE_SIZE, generator=generator
    )
    train_index, val_index = split_indices(hp.fake_samples, hp.val_fraction, hp.seed)
    train_labels, val_labels = train_index % num_classes, val_index % num_classes
    return InMemory(
        train_images=_fake_images(train_labels, prototypes, size, generator),
        train_labels=train_labels,
        val_images=_fake_images(val_labels, prototypes, size, generator),
        val_labels=val_labels,
        classes=[f"class_{index}" for index in range(num_classes)],
    )


def _fake_images(labels: Tensor, prototypes: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """uint8 images of `labels`' prototypes plus noise, made FAKE_CHUNK_BYTES of float32 at a time."""
    channels = prototypes.shape[1]
    images = torch.empty(len(labels), channels, size, size, dtype=torch.uint8)
    chunk = max(1, FAKE_CHUNK_BYTES // (channels * size * size * 4))
    for start in range(0, len(labels), chunk):
        part = labels[start : start + chunk]
        # Upsampling per chunk: all prototypes at full size could outweigh the dataset itself.
        signal = F.interpolate(prototypes[part], size=(size, size), mode="bilinear", align_corners=False)
        noise = torch.randn(signal.shape, generator=generator).mul_(FAKE_NOISE_STD)
        images[start : start + len(part)] = signal.add_(noise).clamp_(0.0, 1.0).mul_(255.0).round_()
    return images
