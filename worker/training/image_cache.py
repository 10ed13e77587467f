"""Decoding an image folder's files: each split's Dataset, the decode pass up front that some
settings need, and the memory cache that keeps each image the first time it is decoded, so that
later epochs never decode a file again.

The cache (SharedImages) is one block of shared memory per split, sized from the files' headers
before the first batch: DataLoader workers, forked with it, fill it during epoch 1 and every
process reads it afterwards, without copying the pixels or holding a file descriptor per image.
"""

from __future__ import annotations

import itertools
import logging
import mmap
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .errors import ConfigError, DataError
from .loader_workers import init_worker, worker_context
from .transforms import Transform, channel_sums, decode_resized, decoded_shape

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

_Read = TypeVar("_Read")


class SharedImages:
    """A split's decoded images in one uint8 block of shared memory, each at its own offset,
    with a shared flag per image that says whether it is there yet."""

    def __init__(self, shapes: Sequence[tuple[int, int, int]]) -> None:
        self.shapes = list(shapes)
        self.offsets = list(itertools.accumulate((c * h * w for c, h, w in shapes), initial=0))
        self.pixels = _shared_zeros(self.offsets[-1], torch.uint8)
        self.filled = _shared_zeros(len(shapes), torch.bool)

    @classmethod
    def holding(cls, images: Sequence[Tensor]) -> SharedImages:
        cache = cls([(image.shape[0], image.shape[1], image.shape[2]) for image in images])
        for index, image in enumerate(images):
            cache.put(index, image)
        return cache

    def get(self, index: int) -> Tensor | None:
        if not self.filled[index]:
            return None
        return self.pixels[self.offsets[index] : self.offsets[index + 1]].view(self.shapes[index])

    def put(self, index: int, image: Tensor) -> None:
        # A file rewritten since its header was read no longer fits its place: it stays uncached.
        if tuple(image.shape) == self.shapes[index]:
            self.pixels[self.offsets[index] : self.offsets[index + 1]] = image.reshape(-1)
            self.filled[index] = True


def _shared_zeros(count: int, dtype: torch.dtype) -> Tensor:
    """`count` zeros that every DataLoader worker of this process shares with it.

    Where workers are forked, an anonymous shared mapping: inherited as it is, and not bounded by
    /dev/shm, which a container often keeps small. Elsewhere, torch's shared memory, which a
    worker started another way receives by pickle."""
    if worker_context(1) is None:
        return torch.zeros(count, dtype=dtype).share_memory_()
    return torch.frombuffer(mmap.mmap(-1, max(count, 1)), dtype=dtype)[:count]


class ImageFiles(Dataset[tuple[Tensor, int]]):
    """Images of one split, taken from the memory cache or decoded from disk (and then kept in
    the cache, if there is one), then transformed."""

    def __init__(
        self,
        root: Path,
        files: Sequence[str],
        labels: Sequence[int],
        *,
        resize_size: int,
        transform: Transform,
        cache: SharedImages | None,
    ) -> None:
        self.root, self.files, self.labels = root, list(files), list(labels)
        self.resize_size, self.transform, self.cache = resize_size, transform, cache

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.cache.get(index) if self.cache is not None else None
        if image is None:
            image = self.decode(index)
            if self.cache is not None:
                self.cache.put(index, image)
        return self.transform(image), self.labels[index]

    def decode(self, index: int) -> Tensor:
        return self._read(index, decode_resized)

    def shape(self, index: int) -> tuple[int, int, int]:
        """What `decode(index)` will give, from the file's header."""
        return self._read(index, decoded_shape)

    def _read(self, index: int, read: Callable[[Path, int], _Read]) -> _Read:
        try:
            return read(self.root / self.files[index], self.resize_size)
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
    loader = DataLoader(
        _Probe(images),
        batch_size=None,
        num_workers=workers,
        collate_fn=_as_is,
        multiprocessing_context=worker_context(workers),
        worker_init_fn=init_worker,
    )
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
