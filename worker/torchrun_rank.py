"""`torchrun ... -m worker.torchrun_rank <run folder>`: one rank of a multi-device job.

The supervisor (worker/launch.py TorchrunProcess) left the task in the run folder and listens
on a Unix socket there. Rank 0 connects to it and runs the job as a one-device training process
does, reporting up the socket; the other ranks train their shards and leave a failure, if any,
in the run folder. Every rank dies with torchrun, its parent.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import socket
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from app.hyperparameters import Hyperparameters
from worker.launch import SOCKET_FILE, TASK_FILE, death_reason, failed_rank
from worker.orphans import LAUNCHER_PID_ENV, die_with_parent
from worker.protocol import LEASE_EXPIRED_EXIT_CODE, Failed, LeaseRenewed, TrainingTask
from worker.training.distributed import Ranks
from worker.training.errors import ConfigError
from worker.training.runtime import resolve_device
from worker.training_process import run_job, run_other_rank


def main(run_dir: Path) -> int:
    die_with_parent(int(os.environ[LAUNCHER_PID_ENV]))
    task: TrainingTask = pickle.loads((run_dir / TASK_FILE).read_bytes())
    # The backend follows the device the ranks will train on, as the training code resolves it;
    # hyperparameters this machine cannot honour fail the run where rank 0 reports why.
    try:
        device_type = resolve_device(Hyperparameters.model_validate(task.hyperparameters).device).type
    except (ValueError, ConfigError):
        device_type = "cpu"
    ranks = Ranks.from_torchrun(device_type)
    if ranks.is_main:
        link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        link.connect(str(run_dir / SOCKET_FILE))
        conn = Connection(link.detach())
        greeting = conn.recv()  # the lease's deadline as of now: seconds passed since the claim
        assert isinstance(greeting, LeaseRenewed), greeting
        lost = Failed(*death_reason(LEASE_EXPIRED_EXIT_CODE))
        failure = run_job(
            conn,
            dataclasses.replace(task, lease_deadline=greeting.deadline),
            ranks,
            on_lease_expired=lambda: failed_rank(run_dir, ranks.rank, lost),
        )
    else:
        failure = run_other_rank(task, ranks)
    if failure is not None:
        failed_rank(run_dir, ranks.rank, failure)
        # Exits at once: torchrun then stops the ranks that wait for this one at a collective.
        return 1
    ranks.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
