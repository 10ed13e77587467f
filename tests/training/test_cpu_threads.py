"""A training process's CPU threads: both torch pools sized to its share, what is in effect
reported, and one thread in each DataLoader worker process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset

from tests.support.processes import REPO_ROOT
from worker.training.loaders import DeviceLoader

# A fresh interpreter, as a training process is: its inter-op pool has not run anything yet.
SIZES_TWICE = """
import json, torch
from worker.training.cpu_threads import use_cpu_threads
first = use_cpu_threads(3)
seen = (torch.get_num_threads(), torch.get_num_interop_threads())
second = use_cpu_threads(2)
print(json.dumps([first.model_dump(), list(seen), second.model_dump()]))
"""


def test_both_pools_take_the_share_and_what_is_in_effect_is_reported() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SIZES_TWICE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    first, seen, second = json.loads(done.stdout)
    assert first == {"intra_op": 3, "inter_op": 3}
    assert seen == [3, 3]
    # The inter-op pool is sized once per process: a second call reports the size it kept.
    assert second == {"intra_op": 2, "inter_op": 3}
    assert "inter-op threads stay at 3" in done.stderr


class ThreadsSeen(Dataset[tuple[torch.Tensor, int]]):
    """Each sample is the intra-op thread count of the process that loaded it."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.tensor([float(torch.get_num_threads())]), index % 2


def _threads_in_workers() -> Iterator[float]:
    loader = DeviceLoader(
        ThreadsSeen(), batch_size=2, device=torch.device("cpu"), shuffle=False, num_workers=2
    )
    for images, _ in loader:
        yield from images.flatten().tolist()


def test_dataloader_workers_run_one_thread_each_whatever_the_training_process_uses() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        seen = list(_threads_in_workers())
    finally:
        torch.set_num_threads(threads)
    assert seen == [1.0] * 8
