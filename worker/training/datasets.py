"""Datasets read from the data folder: torchvision's downloadable sets and image folders.

Every failure a person can fix (missing files, no network, a path outside the data
folder, empty class folders) becomes a DataError that says what to put where.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset
from torchvision import datasets, transforms
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from app.hyperparameters import IMAGEFOLDER_DEFAULT_SIZE as DEFAULT_IMAGEFOLDER_SIZE
from app.hyperparameters import Hyperparameters

from .errors import DataError

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
    num_classes: int


def split_indices(num_samples: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded (train, val) split with at least one sample on each side."""
    if num_samples < 2:
        raise DataError(
            f"the dataset has {num_samples} sample(s); at least 2 are needed to split off validation"
        )
    num_val = min(max(round(num_samples * val_fraction), 1), num_samples - 1)
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))
    return order[num_val:], order[:num_val]


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
        num_classes=len(train.classes),
    )


def _as_nchw_uint8(data: object) -> Tensor:
    images = torch.as_tensor(data, dtype=torch.uint8)
    if images.ndim == 3:  # MNIST-like: NxHxW grayscale
        return images.unsqueeze(1).contiguous()
    return images.permute(0, 3, 1, 2).contiguous()  # CIFAR: NxHxWxC


def _image_folder(folder: Path, root: Path, transform: transforms.Compose) -> datasets.ImageFolder:
    def is_valid_file(path: str) -> bool:
        # Class folders and files may be symlinks too; each must stay inside the data folder.
        if not has_file_allowed_extension(path, IMG_EXTENSIONS):
            return False
        if not Path(os.path.realpath(path)).is_relative_to(root):
            raise DataError(f"{path} is a link to a file outside the data folder {root}; copy it in instead")
        return True

    try:
        return datasets.ImageFolder(str(folder), transform=transform, is_valid_file=is_valid_file)
    except FileNotFoundError as exc:
        raise DataError(
            f"no images found under {folder} ({exc}); expected one sub-folder per class holding images "
            f"({', '.join(IMG_EXTENSIONS)}), e.g. {folder}/cat/0001.png"
        ) from exc


def load_imagefolder(
    hp: Hyperparameters, data_dir: Path
) -> tuple[Dataset[tuple[Tensor, int]], Dataset[tuple[Tensor, int]], Sequence[str]]:
    """(train, val, class names) from `data_dir/hp.dataset_path`.

    With `train/` and `val/` sub-folders they are the two splits; otherwise the
    folder itself is split with `val_fraction`.
    """
    assert hp.dataset_path is not None  # enforced by Hyperparameters
    root = Path(os.path.realpath(data_dir))
    if not root.is_dir():
        raise DataError(f"the data folder {data_dir} does not exist on this worker")
    target = Path(os.path.realpath(root / hp.dataset_path))
    if not target.is_relative_to(root):
        raise DataError(
            f"dataset_path {hp.dataset_path!r} leads to {target}, outside the data folder {root}; "
            "copy the images into the data folder instead of linking to them"
        )
    if not target.is_dir():
        raise DataError(
            f"dataset_path {hp.dataset_path!r} does not exist: create {root / hp.dataset_path}/ "
            "with one sub-folder of images per class (or train/ and val/ folders laid out that way)"
        )
    size = hp.image_size or DEFAULT_IMAGEFOLDER_SIZE
    steps: list[object] = [transforms.Resize((size, size)), transforms.ToTensor()]
    if hp.pretrained:
        # Pretrained backbones expect the statistics they were trained with.
        steps.append(transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    transform = transforms.Compose(steps)

    train_dir, val_dir = target / "train", target / "val"
    if train_dir.is_dir() and val_dir.is_dir():
        train = _image_folder(train_dir, root, transform)
        val = _image_folder(val_dir, root, transform)
        if train.classes != val.classes:
            only_train = sorted(set(train.classes) - set(val.classes))
            only_val = sorted(set(val.classes) - set(train.classes))
            raise DataError(
                f"{train_dir} and {val_dir} must hold the same class folders; "
                f"only in train: {only_train or 'none'}, only in val: {only_val or 'none'}"
            )
        logger.info("imagefolder %s: %d train, %d val images", target, len(train), len(val))
        return train, val, train.classes

    full = _image_folder(target, root, transform)
    train_index, val_index = split_indices(len(full), hp.val_fraction, hp.seed)
    logger.info("imagefolder %s: %d images split %d/%d", target, len(full), len(train_index), len(val_index))
    return Subset(full, train_index.tolist()), Subset(full, val_index.tolist()), full.classes
