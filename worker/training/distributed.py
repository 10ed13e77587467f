"""The ranks of a run: one process per device, started by torchrun, trained with DDP.

A one-device run is ONE_RANK: rank 0 of 1, where every collective below returns at once.
A multi-device run calls `Ranks.from_torchrun()` in each rank process. The training code
asks the same questions either way, so it has no second path for several devices:
- `sum_` adds a tensor over all ranks (the epoch's loss and accuracy totals);
- `any` tells every rank whether any rank saw a stop (the supervisor talks to rank 0 only);
- `gather` brings every rank's object (its RNG state) to all;
- `barrier` holds the ranks together after rank 0 wrote a checkpoint.
Flags and objects travel on a gloo group on the CPU, so that on CUDA they never make
the host wait for the GPU; tensors on the device travel on the run's own backend.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DistributedSampler

# How long a rank waits for the others at a collective before it fails the run; a rank that
# died is normally noticed by torchrun, which stops the rest, well before this.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    control: Any = None  # the gloo process group for flags and objects (None for one rank)

    @classmethod
    def from_torchrun(cls, device_type: str) -> Ranks:
        """Join the run's process group from torchrun's environment (RANK, WORLD_SIZE, ...):
        NCCL on CUDA, gloo on the CPU. On CUDA, this rank's device becomes the current one."""
        local_rank = int(os.environ["LOCAL_RANK"])
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
        control = dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT) if backend != "gloo" else None
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, control or dist.group.WORLD)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints and reports to the supervisor."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def sum_(self, tensor: Tensor) -> Tensor:
        """Sum `tensor` over all ranks, in place."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any rank; every rank must ask at the same point."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.control)
        return bool(value.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order."""
        if not self.distributed:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj, group=self.control)
        return gathered

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(group=self.control)

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


# A one-device run: rank 0 of 1.
ONE_RANK = Ranks()


def shard_indices(num_samples: int, ranks: Ranks, *, shuffle: bool, seed: int, epoch: int) -> Tensor:
    """The sample indices this rank serves in `epoch`.

    Training (`shuffle`) uses torch's DistributedSampler: one permutation drawn from
    seed + epoch on the CPU (the same in every process and on every device, leaving the global
    RNG alone), padded to a multiple of the ranks, then every world_size-th index, so all ranks
    take the same number of batches. With one rank it is exactly that permutation. Evaluation
    takes every world_size-th sample without padding: each sample is counted once over all ranks.
    """
    if not shuffle:
        return torch.arange(ranks.rank, num_samples, ranks.world_size)
    # It only takes the dataset's length.
    sized: Any = range(num_samples)
    sampler: DistributedSampler[int] = DistributedSampler(
        sized, num_replicas=ranks.world_size, rank=ranks.rank, shuffle=True, seed=seed
    )
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.int64)
