"""How DataLoader workers start: forked from the training process, then made ready by a list
of steps (`init_worker`, each loader's worker_init_fn), so that each concern adds one step."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.context import BaseContext

# File descriptors a forked worker must not hold (keep_from_workers).
_KEPT_FROM_WORKERS: set[int] = set()


def worker_context(num_workers: int) -> BaseContext | None:
    """Workers forked from this process where the platform can fork.

    A training process is itself started by the worker's fork server, so multiprocessing's
    default here is "forkserver": each DataLoader worker would be a new child of that server,
    sent the whole dataset by pickle (one file descriptor per shared tensor: a memory-cached
    folder fails with "too many fds"). Forked, a worker starts in milliseconds with the
    dataset, its cache and every module already there."""
    if num_workers == 0 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    return multiprocessing.get_context("fork")


def keep_from_workers(fd: int) -> None:
    """Have forked workers drop `fd`: the training process's end of its supervisor's pipe, which
    tells the supervisor that the process is gone only once no process holds it any more."""
    _KEPT_FROM_WORKERS.add(fd)


def _drop_kept_descriptors(worker_id: int) -> None:
    # Pointed at /dev/null rather than closed: the objects that own these numbers close them
    # again at exit, which must not hit a descriptor the worker has opened since.
    if not _KEPT_FROM_WORKERS:
        return
    null = os.open(os.devnull, os.O_RDWR)
    for fd in _KEPT_FROM_WORKERS:
        with contextlib.suppress(OSError):
            os.dup2(null, fd)
    os.close(null)


WORKER_INIT_STEPS: list[Callable[[int], None]] = [_drop_kept_descriptors]


def init_worker(worker_id: int) -> None:
    """Every DataLoader's worker_init_fn: WORKER_INIT_STEPS in order."""
    for step in WORKER_INIT_STEPS:
        step(worker_id)
