"""How many CPU threads a job's training process may use: its share of this host's CPUs.

Left alone, each training process runs as many OpenMP threads as the machine has cores; two
of them (or DataLoader workers, or other tenants) on the same cores then spin against each
other and an epoch takes many times as long. So each process gets TRAINQ_CPU_THREADS threads
when it is set, else the CPUs the worker may run on (its affinity: taskset, cpusets) divided
among the live workers registered on its host and then among the job's ranks; at least one.
Taken at each claim: workers that come or go change the share of the next job.
"""

from __future__ import annotations

from sqlalchemy import Engine

from app.queue import workers
from worker.devices import count_cpus


def threads_per_rank(*, setting: int | None, cpus: int, workers_on_host: int, ranks: int) -> int:
    """The intra-op (and inter-op) threads each rank of a job uses."""
    if setting is not None:
        return setting
    return max(1, cpus // max(1, workers_on_host) // max(1, ranks))


def threads_for_claim(engine: Engine, *, setting: int | None, host: str, ranks: int) -> int:
    """threads_per_rank for a job just claimed by a worker on `host`, from the registry as it is now."""
    if setting is not None:
        return setting  # no registry read: the owner of the host decided
    return threads_per_rank(
        setting=None,
        cpus=count_cpus(),
        workers_on_host=workers.workers_on_host(engine, host=host),
        ranks=ranks,
    )
