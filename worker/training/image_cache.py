"""Decoding an image folder's files: each split's Dataset, the one decode pass up front, and
the memory cache that pass can fill so that later epochs never decode a file again.

Cached images are uint8 tensors at the resize size, held in a list that DataLoader workers
inherit through fork without copying the pixels (they are only read).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .errors import ConfigError, DataError
from .transforms import Transform, channel_sums, decode_resized

logger = logging.getLogger(__name__)

# cache 'auto' keeps decoded images in memory when their estimated size fits the smaller of
# these, per rank (every rank of a multi-device job holds its own copy).
MEMORY_CACHE_MAX_BYTES = 2 * 1024**3
MEMORY_CACHE_SHARE_OF_AVAILABLE = 0.25
# cache 'memory' may take up to this share of the available memory, per rank, before it is refused.
MEMORY_CACHE_MAX_SHARE_WHEN_ASKED = 0.8
# Files whose headers the estimate reads: enough for a mean size, cheap on a million files.
CACHE_ESTIMATE_SAMPLE = 64
BAD_FILES_NAMED = 10  # in the error message; the rest are counted


class ImageFiles(Dataset[tuple[Tensor, int]]):
    """Images of one split, decoded from disk or taken from the memory cache, then transformed."""

    def __init__(
        self,
        root: Path,
        files: Sequence[str],
        labels: Sequence[int],
        *,
        resize_size: int,
        transform: Transform,
        cache: Sequence[Tensor] | None,
    ) -> None:
        self.root, self.files, self.labels = root, list(files), list(labels)
        self.resize_size, self.transform, self.cache = resize_size, transform, cache

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.cache[index] if self.cache is not None else self.decode(index)
        return self.transform(image), self.labels[index]

    def decode(self, index: int) -> Tensor:
        try:
            return decode_resized(self.root / self.files[index], self.resize_size)
        # A broken file can make PIL raise nearly anything (OSError, SyntaxError, DecompressionBombError...).
        except Exception as exc:
            raise DataError(
                f"cannot read image {self.files[index]} ({exc}); replace or remove it, "
                'or resubmit with "skip_bad_images": true'
            ) from exc


def decode_all(
    images: ImageFiles, *, keep: bool, skip: bool, workers: int
) -> tuple[list[Tensor | None], list[Tensor], list[str]]:
    """Decode every image once, in `workers` processes: (the images if `keep`, their
    channel_sums, the files that failed). Failures raise a DataError unless `skip`."""
    loader = DataLoader(_Probe(images), batch_size=None, num_workers=workers, collate_fn=_as_is)
    decoded: list[Tensor | None] = []
    sums: list[Tensor] = []
    bad: list[str] = []
    for index, (image, image_sums, error) in enumerate(loader):
        if error is not None:
            bad.append(images.files[index])
            logger.warning("unreadable image %s: %s", images.files[index], error)
        # A clone leaves the worker's shared-memory block behind: kept, each would hold a file descriptor.
        decoded.append(image.clone() if keep and image is not None else None)
        sums.append(image_sums if image_sums is not None else torch.zeros(7, dtype=torch.float64))
    if bad and not skip:
        named = ", ".join(bad[:BAD_FILES_NAMED]) + (
            f" and {len(bad) - BAD_FILES_NAMED} more" if len(bad) > BAD_FILES_NAMED else ""
        )
        raise DataError(
            f"{len(bad)} unreadable image(s): {named}; replace or remove them, "
            'or resubmit with "skip_bad_images": true to train without them'
        )
    return decoded, sums, bad


class _Probe(Dataset[tuple[Tensor | None, Tensor | None, str | None]]):
    def __init__(self, images: ImageFiles) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor | None, Tensor | None, str | None]:
        try:
            image = self.images.decode(index)
        except DataError as exc:
            return None, None, str(exc.__cause__)
        return image, channel_sums(image), None


def _as_is(item: object) -> object:
    return item


def use_memory_cache(cache: str, images: ImageFiles, *, budget: int, world_size: int = 1) -> bool:
    """Whether to keep `images` decoded in memory: `cache` "memory" and "none" say so, "auto" when
    the estimate fits `budget`. Asked for "memory", images that could not fit what this machine has
    free are refused (ConfigError) rather than left to the kernel's OOM killer, retry after retry."""
    if cache == "none":
        return False
    estimate = _estimated_decoded_bytes(images)
    if cache == "memory":
        room = int(_available_memory_bytes() * MEMORY_CACHE_MAX_SHARE_WHEN_ASKED) // world_size
        if estimate > room:
            raise ConfigError(
                f"cache 'memory' would hold about {estimate / 1024**2:.0f} MiB of decoded images on each of "
                f"{world_size} device(s), more than the {room / 1024**2:.0f} MiB this worker can spare: use "
                "cache 'auto' (decodes every epoch when they do not fit) or 'none', or a smaller image_size"
            )
        return True
    fits = estimate <= budget
    logger.info(
        "decoded images estimated at %.0f MiB, memory cache budget %.0f MiB: %s",
        estimate / 1024**2,
        budget / 1024**2,
        "cached in memory" if fits else "decoded every epoch",
    )
    return fits


def _estimated_decoded_bytes(images: ImageFiles) -> int:
    """All images as uint8 RGB at the resize size, from the headers of an evenly spread sample."""
    count = len(images)
    step = max(1, count // CACHE_ESTIMATE_SAMPLE)
    sizes: list[int] = []
    for index in range(0, count, step):
        try:
            with Image.open(images.root / images.files[index]) as image:
                width, height = image.size
        except Exception:  # the decode pass reports bad files; here they count as square
            width = height = 1
        scale = images.resize_size / min(width, height)
        sizes.append(3 * round(width * scale) * round(height * scale))
    return round(sum(sizes) / len(sizes) * count)


def cache_budget_bytes() -> int:
    return min(MEMORY_CACHE_MAX_BYTES, int(_available_memory_bytes() * MEMORY_CACHE_SHARE_OF_AVAILABLE))


def _available_memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # Free pages only (less than what could be freed), where /proc/meminfo is missing.
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def identity(image: Tensor) -> Tensor:
    return image
