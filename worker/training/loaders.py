"""Batch loaders that hand (images, labels) to the loop already on the training device.

Both reshuffle from `seed + epoch` rather than from a running generator, so a run
resumed at epoch e sees exactly the batches an uninterrupted run would have seen;
`set_epoch(e, start_batch=b)` serves that epoch from batch b on, for a run resumed
mid-epoch, without touching the samples it skips.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

Batch = tuple[Tensor, Tensor]


class Loader(Protocol):
    def __len__(self) -> int:
        """Batches in a whole epoch, however many `set_epoch` skips."""

    def __iter__(self) -> Iterator[Batch]: ...

    def set_epoch(self, epoch: int, *, start_batch: int = 0) -> None:
        """Serve `epoch`'s order from now on, starting at batch `start_batch`."""

    memory_format: torch.memory_format  # of the image batches served (channels_last for CUDA conv nets)


def epoch_order(num_samples: int, seed: int, epoch: int) -> Tensor:
    # Drawn on the CPU from a fresh generator: the same on every device and in every process,
    # and the global RNG (dropout's) is never touched.
    return torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed + epoch))


def _usable_samples(num_samples: int, batch_size: int, shuffle: bool) -> int:
    # A last training batch of one sample is dropped: BatchNorm cannot normalise a single
    # value per channel, which is what small images leave after a network's strides.
    if shuffle and 1 < batch_size < num_samples and num_samples % batch_size == 1:
        return num_samples - 1
    return num_samples


class TensorLoader:
    """Serves a dataset held as two tensors, moved to the device once.

    Batches are index slices of the whole tensor: no per-sample Python work, no
    worker processes. uint8 images stay uint8 in memory and become [0, 1] floats
    one batch at a time; `resize_to` resizes batches whose size differs.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        batch_size: int,
        device: torch.device,
        shuffle: bool,
        seed: int = 0,
        resize_to: int | None = None,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.resize_to = resize_to
        self.epoch = 0
        self.start_batch = 0
        self.memory_format = torch.contiguous_format
        self._samples = _usable_samples(len(labels), batch_size, shuffle)

    def set_epoch(self, epoch: int, *, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return math.ceil(self._samples / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        order: Tensor | None = None
        if self.shuffle:
            order = epoch_order(len(self.labels), self.seed, self.epoch).to(self.images.device)
        for start in range(self.start_batch * self.batch_size, self._samples, self.batch_size):
            stop = min(start + self.batch_size, self._samples)
            if order is None:
                images, labels = self.images[start:stop], self.labels[start:stop]
            else:
                index = order[start:stop]
                images, labels = self.images[index], self.labels[index]
            yield self._prepare(images), labels

    def _prepare(self, images: Tensor) -> Tensor:
        if images.dtype == torch.uint8:
            images = images.float().div_(255.0)
        size = self.resize_to
        if size is not None and images.shape[-2:] != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
        return images.contiguous(memory_format=self.memory_format)


class EpochSampler(Sampler[int]):
    """Sample indices of one epoch, shuffled by `epoch_order`, from an offset on.

    Skipped indices never reach the DataLoader, so their images are not even read.
    """

    def __init__(self, num_samples: int, *, shuffle: bool, seed: int) -> None:
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, *, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return max(self.num_samples - self.start, 0)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = epoch_order(self.num_samples, self.seed, self.epoch)
        else:
            order = torch.arange(self.num_samples)
        return iter(order[self.start :].tolist())


class DeviceLoader:
    """A DataLoader over a map-style dataset whose batches arrive on the device."""

    def __init__(
        self,
        dataset: Dataset[Any],
        *,
        batch_size: int,
        device: torch.device,
        shuffle: bool,
        num_workers: int,
        seed: int = 0,
    ) -> None:
        num_samples = len(dataset)  # type: ignore[arg-type]
        self.device = device
        self.seed = seed
        self.batch_size = batch_size
        self.sampler = EpochSampler(num_samples, shuffle=shuffle, seed=seed)
        # The DataLoader draws its workers' base seed from this generator at every
        # iteration; without one it would draw from the global RNG and shift dropout's
        # random stream, which a run resumed mid-epoch could not reproduce.
        self.generator = torch.Generator().manual_seed(seed)
        self.pin_memory = device.type == "cuda"
        self.memory_format = torch.contiguous_format
        self.loader: DataLoader[Batch] = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            generator=self.generator,
            num_workers=num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=num_workers > 0,
            drop_last=_usable_samples(num_samples, batch_size, shuffle) < num_samples,
        )
        self._batches = len(self.loader)  # taken before any start_batch shortens the sampler

    def set_epoch(self, epoch: int, *, start_batch: int = 0) -> None:
        self.sampler.set_epoch(epoch, start=start_batch * self.batch_size)
        self.generator.manual_seed(self.seed + epoch)

    def __len__(self) -> int:
        return self._batches

    def __iter__(self) -> Iterator[Batch]:
        for images, labels in self.loader:
            yield (
                images.to(self.device, non_blocking=self.pin_memory, memory_format=self.memory_format),
                labels.to(self.device, non_blocking=self.pin_memory),
            )
