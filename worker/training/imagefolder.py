"""Image-folder datasets: the layout (app.imagefolder_layout), bad images, the splits, the transforms.

Every image is decoded once up front when the run depends on it before training:
skip_bad_images needs to know which fail, and normalize 'dataset' needs the train split's
pixels. Otherwise images are decoded as batches need them, and one that fails then fails the
job with a DataError naming it; the memory cache, sized from the files' headers, keeps each
image the first time it is decoded (or what the pass up front decoded), so that training starts
at once and only epoch 1 decodes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from app.contract import MAX_SKIPPED_FILES_LISTED, DatasetInfo, EvalTransform
from app.hyperparameters import IMAGEFOLDER_DEFAULT_SIZE, Hyperparameters
from app.imagefolder_layout import ImageFolderLayout, LayoutError, Split, find_layout

from .datasets import stratified_split
from .errors import DataError
from .image_cache import (
    BAD_FILES_NAMED,
    ImageFiles,
    SharedImages,
    cache_budget_bytes,
    decode_all,
    identity,
    use_memory_cache,
)
from .transforms import (
    Transform,
    eval_spec,
    eval_transform,
    mean_std,
    resize_size_for,
    train_transform,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageFolderData:
    train: ImageFiles
    val: ImageFiles
    test: ImageFiles | None
    info: DatasetInfo
    eval_transform: EvalTransform


def load_imagefolder(hp: Hyperparameters, data_dir: Path, *, world_size: int = 1) -> ImageFolderData:
    """The splits of `data_dir/hp.dataset_path` (DataError with what to fix if it cannot be used)."""
    assert hp.dataset_path is not None  # enforced by Hyperparameters
    try:
        layout = find_layout(data_dir, hp.dataset_path)
    except LayoutError as exc:
        raise DataError(str(exc)) from exc
    image_size = hp.image_size or IMAGEFOLDER_DEFAULT_SIZE
    resize_size = resize_size_for(image_size)
    splits = [s for s in (layout.train, layout.val, layout.test) if s is not None]
    every = ImageFiles(
        layout.root,
        [f for s in splits for f in s.files],
        [label for s in splits for label in s.labels],
        resize_size=resize_size,
        transform=identity,
        cache=None,
    )
    keep = use_memory_cache(hp.cache, every, budget=cache_budget_bytes() // world_size, world_size=world_size)
    decoded: list[Tensor | None] = []
    sums: list[Tensor] = []
    skipped: list[str] = []
    if hp.skip_bad_images or hp.normalize == "dataset":
        decoded, sums, skipped = decode_all(every, keep=keep, skip=hp.skip_bad_images, workers=hp.num_workers)
    bad = set(skipped)

    def part(split: Split) -> tuple[list[int], list[int]]:
        start = sum(len(s.files) for s in splits[: splits.index(split)])
        positions = [start + i for i, f in enumerate(split.files) if f not in bad]
        return positions, [every.labels[p] for p in positions]

    train, train_labels = part(layout.train)
    _check_every_class_kept(layout, train_labels, skipped)
    if layout.val is None:
        keep_train, carved = stratified_split(train_labels, hp.val_fraction, hp.seed)
        train, val = [train[i] for i in keep_train], [train[i] for i in carved]
    else:
        val = part(layout.val)[0]
    test = part(layout.test)[0] if layout.test is not None else None

    stats = mean_std(torch.stack([sums[p] for p in train])) if hp.normalize == "dataset" else None
    spec = eval_spec(hp.normalize or "none", image_size, stats)
    assert hp.augment is not None  # resolved by Hyperparameters

    def dataset(positions: list[int], transform: Transform) -> ImageFiles:
        cache = None
        if keep and decoded:
            cache = SharedImages.holding([decoded[p] for p in positions])  # type: ignore[misc]  # kept: none is None
        elif keep:
            cache = SharedImages([every.shape(p) for p in positions])
        return ImageFiles(
            layout.root,
            [every.files[p] for p in positions],
            [every.labels[p] for p in positions],
            resize_size=resize_size,
            transform=transform,
            cache=cache,
        )

    info = DatasetInfo(
        layout=layout.layout,
        classes=list(layout.classes),
        train_samples=len(train),
        val_samples=len(val),
        test_samples=len(test or []),
        skipped_files=skipped[:MAX_SKIPPED_FILES_LISTED],
        skipped_count=len(skipped),
    )
    logger.info(
        "imagefolder %s (%s): %d train, %d val, %d test images, %d skipped, cache %s",
        layout.root,
        layout.layout,
        info.train_samples,
        info.val_samples,
        info.test_samples,
        info.skipped_count,
        "memory" if keep else "none",
    )
    evaluate = eval_transform(spec)
    return ImageFolderData(
        train=dataset(train, train_transform(hp.augment, image_size, spec.mean, spec.std)),
        val=dataset(val, evaluate),
        test=dataset(test, evaluate) if test is not None else None,
        info=info,
        eval_transform=spec,
    )


def _check_every_class_kept(layout: ImageFolderLayout, train_labels: list[int], skipped: list[str]) -> None:
    lost = sorted(set(range(len(layout.classes))) - set(train_labels))
    if lost:
        names = ", ".join(layout.classes[i] for i in lost)
        raise DataError(
            f"every train image of class(es) {names} is unreadable ({len(skipped)} files skipped in all, "
            f"e.g. {', '.join(skipped[:BAD_FILES_NAMED])}); replace them"
        )
