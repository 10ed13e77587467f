"""How a DeviceLoader's workers start and how each sample's transforms are seeded."""

from __future__ import annotations

import multiprocessing
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import Dataset

from worker.training import loader_workers
from worker.training.loader_workers import keep_from_workers
from worker.training.loaders import DeviceLoader


class _Noisy(Dataset[tuple[Tensor, int]]):
    """Samples drawn from torch's global generator, as random transforms draw them. The lock makes
    it impossible to pickle: a worker can only have it by being forked."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return torch.rand(3), index


def _loader(num_workers: int) -> DeviceLoader:
    return DeviceLoader(
        _Noisy(12), batch_size=4, device=torch.device("cpu"), shuffle=True, num_workers=num_workers, seed=3
    )


def _epoch(loader: DeviceLoader) -> tuple[Tensor, Tensor]:
    batches = list(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


@pytest.fixture
def forkserver_by_default() -> Iterator[None]:
    """This process's default start method as in a training process, which the fork server started."""
    before = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("forkserver", force=True)
    yield
    multiprocessing.set_start_method(before, force=True)


@pytest.mark.usefixtures("forkserver_by_default")
def test_workers_are_forked_from_the_training_process_whatever_its_default_start_method() -> None:
    images, labels = _epoch(_loader(num_workers=2))

    assert sorted(labels.tolist()) == list(range(12))
    assert torch.equal(images, _epoch(_loader(num_workers=0))[0])


def test_each_sample_seeds_the_cpu_generator_only_and_leaves_its_stream_where_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(*args: Any) -> None:
        raise AssertionError("a sample seeded more than the CPU generator")

    for module, name in (
        (torch, "manual_seed"),
        (torch.cuda, "manual_seed_all"),
        (torch.cuda, "manual_seed"),
    ):
        monkeypatch.setattr(module, name, refused)
    torch.default_generator.manual_seed(7)
    expected_next = torch.rand(2)
    torch.default_generator.manual_seed(7)
    loader = _loader(num_workers=0)

    first = _epoch(loader)[0]

    assert torch.equal(torch.rand(2), expected_next)
    assert torch.equal(first, _epoch(loader)[0])  # the same seed and epoch draw the same numbers
    loader.set_epoch(2)
    assert not torch.equal(first, _epoch(loader)[0])


def test_forked_workers_do_not_hold_the_supervisors_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader_workers, "_KEPT_FROM_WORKERS", weakref.WeakSet())
    reader, writer = multiprocessing.Pipe(duplex=False)
    keep_from_workers(writer)
    loader = _loader(num_workers=2)
    try:
        _epoch(loader)  # its persistent workers are running now, forked while the writer was open
        writer.close()

        # The pipe ends as soon as this process lets go of it, as a supervisor sees a dead process.
        assert reader.poll(60)
        with pytest.raises(EOFError):
            reader.recv()
    finally:
        del loader
        reader.close()
