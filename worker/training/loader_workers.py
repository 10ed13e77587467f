"""How DataLoader workers start: forked from the training process, then made ready by a list
of steps (`init_worker`, each loader's worker_init_fn), so that each concern adds one step."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext

# Connections a forked worker must not hold (keep_from_workers); held weakly, so that one closed
# and gone is not mistaken for whatever reuses its descriptor's number.
_KEPT_FROM_WORKERS: weakref.WeakSet[Connection] = weakref.WeakSet()


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


def keep_from_workers(conn: Connection) -> None:
    """Have forked workers drop `conn`: the training process's end of its supervisor's pipe, which
    tells the supervisor that the process is gone only once no process holds it any more."""
    _KEPT_FROM_WORKERS.add(conn)


def _drop_kept_connections(worker_id: int) -> None:
    # Its descriptor pointed at /dev/null rather than closed: the inherited Connection closes it
    # again when it is collected, which must not hit a descriptor the worker has opened since.
    kept = [conn for conn in _KEPT_FROM_WORKERS if not conn.closed]
    if not kept:
        return
    null = os.open(os.devnull, os.O_RDWR)
    for conn in kept:
        with contextlib.suppress(OSError):
            os.dup2(null, conn.fileno())
    os.close(null)


WORKER_INIT_STEPS: list[Callable[[int], None]] = [_drop_kept_connections]


def init_worker(worker_id: int) -> None:
    """Every DataLoader's worker_init_fn: WORKER_INIT_STEPS in order."""
    for step in WORKER_INIT_STEPS:
        step(worker_id)
