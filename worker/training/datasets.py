"""Datasets held as tensors (torchvision's downloadable sets) and the seeded splits.

Every failure a person can fix (missing files, no network) becomes a DataError that says
what to put where. Image folders are in imagefolder.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torchvision import datasets

from app.hyperparameters import Hyperparameters

from .errors import DataError

logger = logging.getLogger(__name__)


_TORCHVISION_SETS: dict[str, type[datasets.VisionDataset]] = {
    "mnist": datasets.MNIST,
    "fashion_mnist": datasets.FashionMNIST,
    "cifar10": datasets.CIFAR10,
}


@dataclass(frozen=True)
class InMemory:
    """A dataset small enough to hold as tensors: images NxCxHxW (uint8 or float), labels int64."""

    train_images: Tensor
    train_labels: Tensor
    val_images: Tensor
    val_labels: Tensor
    classes: list[str]  # index order

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def split_indices(num_samples: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded (train, val) split with at least one sample on each side."""
    if num_samples < 2:
        raise DataError(
            f"the dataset has {num_samples} sample(s); at least 2 are needed to split off validation"
        )
    num_val = min(max(round(num_samples * val_fraction), 1), num_samples - 1)
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))
    return order[num_val:], order[:num_val]


def stratified_split(labels: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded (train, val) positions that hold `val_fraction` of each class out for validation:
    at least one image of a class with two or more, never a class's last image."""
    generator = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_class.setdefault(label, []).append(position)
    train: list[int] = []
    val: list[int] = []
    for label in sorted(by_class):
        positions = by_class[label]
        count = len(positions)
        num_val = min(max(round(count * val_fraction), 1), count - 1)
        order = torch.randperm(count, generator=generator).tolist()
        val += [positions[i] for i in order[:num_val]]
        train += [positions[i] for i in order[num_val:]]
    if not val:
        raise DataError(
            "every class has a single training image, so none can be held out for validation: "
            "add images, or a val/ folder next to train/"
        )
    return sorted(train), sorted(val)


def _expected_files(
    dataset_class: type[datasets.VisionDataset], data_dir: Path
) -> tuple[Path, list[str], str]:
    """The folder torchvision reads, the files it needs there, and where to get them."""
    if issubclass(dataset_class, datasets.MNIST):
        folder = data_dir / dataset_class.__name__ / "raw"
        names = [os.path.splitext(name)[0] for name, _ in dataset_class.resources]
        source = f"{dataset_class.mirrors[0]} (the .gz files, uncompressed)"
        return folder, names, source
    if issubclass(dataset_class, datasets.CIFAR10):
        folder = data_dir / dataset_class.base_folder
        names = [name for name, _ in dataset_class.train_list + dataset_class.test_list]
        names.append(dataset_class.meta["filename"])
        source = f"{dataset_class.url} (extracted into {data_dir})"
        return folder, names, source
    raise AssertionError(f"no file list for {dataset_class.__name__}")


def load_torchvision(hp: Hyperparameters, data_dir: Path) -> InMemory:
    """MNIST, FashionMNIST or CIFAR10 as uint8 tensors; the test split is the validation set."""
    dataset_class = _TORCHVISION_SETS[hp.dataset]
    folder, names, source = _expected_files(dataset_class, data_dir)
    missing = [name for name in names if not (folder / name).is_file()]
    how_to_fix = (
        f"put the files {', '.join(names)} into {folder}/ (from {source}), "
        'or resubmit the job with "download": true on a worker with internet access'
    )
    if missing and not hp.download:
        raise DataError(
            f"dataset {hp.dataset!r} is not in {folder}/: missing {', '.join(missing)}; {how_to_fix}"
        )
    try:
        train = dataset_class(root=str(data_dir), train=True, download=hp.download)
        val = dataset_class(root=str(data_dir), train=False, download=False)
    except (RuntimeError, OSError, ValueError) as exc:
        action = "download" if missing else "read"
        raise DataError(f"could not {action} dataset {hp.dataset!r} ({exc}); {how_to_fix}") from exc
    return InMemory(
        train_images=_as_nchw_uint8(train.data),
        train_labels=torch.as_tensor(train.targets, dtype=torch.int64),
        val_images=_as_nchw_uint8(val.data),
        val_labels=torch.as_tensor(val.targets, dtype=torch.int64),
        classes=list(train.classes),
    )


def _as_nchw_uint8(data: object) -> Tensor:
    images = torch.as_tensor(data, dtype=torch.uint8)
    if images.ndim == 3:  # MNIST-like: NxHxW grayscale
        return images.unsqueeze(1).contiguous()
    return images.permute(0, 3, 1, 2).contiguous()  # CIFAR: NxHxWxC
