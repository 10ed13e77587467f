"""Batch loaders that hand (images, labels) to the loop already on the training device.

Both reshuffle from `seed + epoch` rather than from a running generator, so a run
resumed at epoch e sees exactly the batches an uninterrupted run would have seen;
`set_epoch(e, start_batch=b)` serves that epoch from batch b on, for a run resumed
mid-epoch, without touching the samples it skips. In a multi-device run each rank's
loader serves its own shard (distributed.shard_indices). A DeviceLoader also seeds each
sample's random transforms (augmentation) from (seed, epoch, index), so the crops a resumed
run draws do not depend on which DataLoader worker a batch lands on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from .distributed import ONE_RANK, Ranks, shard_indices
from .errors import DataError
from .loader_workers import init_worker, worker_context

Batch = tuple[Tensor, Tensor]


class Loader(Protocol):
    def __len__(self) -> int:
        """Batches in a whole epoch, however many `set_epoch` skips."""

    def __iter__(self) -> Iterator[Batch]: ...

    def set_epoch(self, epoch: int, *, start_batch: int = 0) -> None:
        """Serve `epoch`'s order from now on, starting at batch `start_batch`."""

    memory_format: torch.memory_format  # of the image batches served (channels_last for CUDA conv nets)


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
        ranks: Ranks = ONE_RANK,
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
        self.ranks = ranks
        # One rank's evaluation reads contiguous slices; anything else goes through indices.
        self._sliced = not shuffle and not ranks.distributed
        shard = len(self._indices()) if not self._sliced else len(labels)
        self._samples = _usable_samples(shard, batch_size, shuffle)

    def _indices(self) -> Tensor:
        return shard_indices(
            len(self.labels), self.ranks, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch
        )

    def set_epoch(self, epoch: int, *, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return math.ceil(self._samples / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        order = None if self._sliced else self._indices().to(self.images.device)
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


class EpochSampler(Sampler[tuple[int, int]]):
    """This rank's sample indices of one epoch (distributed.shard_indices), from an offset on, as
    (epoch, index) keys for _SeededSamples.

    Skipped indices never reach the DataLoader, so their images are not even read.
    """

    def __init__(self, num_samples: int, *, shuffle: bool, seed: int, ranks: Ranks = ONE_RANK) -> None:
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.ranks = ranks
        self.epoch = 0
        self.start = 0
        self.shard_size = len(self._indices())

    def _indices(self) -> Tensor:
        return shard_indices(
            self.num_samples, self.ranks, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch
        )

    def set_epoch(self, epoch: int, *, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return max(self.shard_size - self.start, 0)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return ((epoch, index) for index in self._indices()[self.start :].tolist())


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A seed of its own for each sample of each epoch (splitmix64-style mixing, so that nearby
    (seed, epoch, index) triples give unrelated streams)."""
    value = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (value ^ (value >> 31)) >> 1  # torch.manual_seed takes up to 2**63 - 1


class _SeededSamples(Dataset[Any]):
    """`dataset[index]` with torch's CPU generator seeded for that (epoch, index): random
    transforms draw the same numbers whichever worker process, and whatever came before."""

    def __init__(self, dataset: Dataset[Any], seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        # The CPU generator alone, which is what transforms draw from: torch.manual_seed would
        # seed (or queue seeds for) every device's generators too, on every sample. Its state is
        # put back after, so that the training process's own stream (dropout, with num_workers 0)
        # moves on as if no sample had been drawn from it.
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(sample_seed(self.seed, epoch, index))
        try:
            return self.dataset[index]
        finally:
            generator.set_state(state)


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
        ranks: Ranks = ONE_RANK,
    ) -> None:
        num_samples = len(dataset)  # type: ignore[arg-type]
        self.dataset = dataset
        self.device = device
        self.seed = seed
        self.batch_size = batch_size
        self.sampler = EpochSampler(num_samples, shuffle=shuffle, seed=seed, ranks=ranks)
        shard = self.sampler.shard_size
        # The DataLoader draws its workers' base seed from this generator at every
        # iteration; without one it would draw from the global RNG and shift dropout's
        # random stream, which a run resumed mid-epoch could not reproduce.
        self.generator = torch.Generator().manual_seed(seed)
        self.pin_memory = device.type == "cuda"
        self.memory_format = torch.contiguous_format
        self.loader: DataLoader[Batch] = DataLoader(
            _SeededSamples(dataset, seed),
            batch_size=batch_size,
            sampler=self.sampler,
            generator=self.generator,
            num_workers=num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=num_workers > 0,
            multiprocessing_context=worker_context(num_workers),
            worker_init_fn=init_worker,
            drop_last=_usable_samples(shard, batch_size, shuffle) < shard,
        )
        self._batches = len(self.loader)  # taken before any start_batch shortens the sampler

    def set_epoch(self, epoch: int, *, start_batch: int = 0) -> None:
        self.sampler.set_epoch(epoch, start=start_batch * self.batch_size)
        self.generator.manual_seed(self.seed + epoch)

    def __len__(self) -> int:
        return self._batches

    def __iter__(self) -> Iterator[Batch]:
        try:
            for images, labels in self.loader:
                yield (
                    images.to(self.device, non_blocking=self.pin_memory, memory_format=self.memory_format),
                    labels.to(self.device, non_blocking=self.pin_memory),
                )
        except DataError as exc:
            # A DataLoader worker's error comes back as "Caught DataError in DataLoader worker
            # process 0. Original Traceback ...": the job's owner gets the message it ended with.
            raise DataError(str(exc).rsplit("DataError: ", 1)[-1].strip()) from exc
