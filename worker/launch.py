"""How the supervisor starts a job's training and talks to it: one forked process for one
device, torchrun for several. Both look the same to the supervisor (TrainingProcess): reports
come up a Connection, Stop and LeaseRenewed go down it, and `end` leaves no process behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Protocol

from app.contract import FailureReason
from worker.orphans import ATTEMPT_ENV, JOB_ID_ENV, kill_attempt
from worker.protocol import LEASE_EXPIRED_EXIT_CODE, Failed, LeaseRenewed, Report, Stop, TrainingTask

logger = logging.getLogger(__name__)

# A process that reported its end is exiting anyway; this long it may take.
CHILD_EXIT_GRACE_S = 30.0
# torchrun stops its ranks on SIGTERM; past this, it and they are killed.
TORCHRUN_TERM_GRACE_S = 3.0
TASK_FILE = "task.pickle"
SOCKET_FILE = "rank0.sock"
FAILURE_FILE = "rank-{rank}.failed.json"

Down = Stop | LeaseRenewed


class TrainingProcess(Protocol):
    pid: int | None

    def poll(self, timeout_s: float) -> bool:
        """Whether a report (or the end of the reports) is waiting, after at most timeout_s."""

    def recv(self) -> Report:
        """The next report; EOFError once the training ended without more."""

    def send(self, message: Down) -> None:
        """Pass a message down; one that cannot be delivered is dropped (the process is gone)."""

    def end(self, *, reported: bool) -> None:
        """Wait for a training that reported its end to exit; stop any other now. Leaves no process."""

    def death(self) -> tuple[FailureReason, str]:
        """Why the training ended without a report (after `end`)."""


class ForkedProcess:
    """One training process, forked from the preloaded server, over a pipe."""

    def __init__(self, mp: BaseContext, main: Any, task: TrainingTask) -> None:
        self._conn, child_conn = mp.Pipe(duplex=True)
        self._process = mp.Process(target=main, args=(child_conn, task), name=f"trainq-job-{task.job_id}")  # type: ignore[attr-defined]
        self._process.start()
        child_conn.close()
        self.pid: int | None = self._process.pid

    def poll(self, timeout_s: float) -> bool:
        return self._conn.poll(timeout_s)

    def recv(self) -> Report:
        return _recv(self._conn)

    def send(self, message: Down) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(message)

    def end(self, *, reported: bool) -> None:
        self._conn.close()
        self._process.join(CHILD_EXIT_GRACE_S if reported else 0)
        if self._process.is_alive():
            self._process.kill()
        self._process.join()

    def death(self) -> tuple[FailureReason, str]:
        return death_reason(self._process.exitcode)


class TorchrunProcess:
    """`torchrun --standalone --nproc-per-node=N` running worker.torchrun_rank; rank 0 connects
    back over a Unix socket in a private folder and speaks the same protocol as a forked process.

    --standalone lets torchrun pick a free rendezvous port (no two jobs on a host collide);
    --max-restarts=0 leaves retries to the queue. Messages sent before rank 0 connected are
    delivered when it does: the latest lease deadline first, then Stop if it was asked for."""

    def __init__(self, task: TrainingTask, *, devices: int, env: dict[str, str]) -> None:
        self._task = task
        self._dir = Path(tempfile.mkdtemp(prefix=f"trainq-{task.job_id[:8]}-"))
        (self._dir / TASK_FILE).write_bytes(pickle.dumps(task))
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(self._dir / SOCKET_FILE))
        self._server.listen(1)
        self._conn: Connection | None = None
        self._deadline = task.lease_deadline
        self._stop_asked = False
        self._failure: tuple[FailureReason, str] | None = None
        command = [
            sys.executable, "-m", "worker.orphans", str(os.getpid()), "--",
            sys.executable, "-m", "torch.distributed.run",
            "--standalone", "--nnodes=1", f"--nproc-per-node={devices}", "--max-restarts=0",
            "-m", "worker.torchrun_rank", str(self._dir),
        ]  # fmt: skip
        full_env = {**os.environ, **env, JOB_ID_ENV: task.job_id, ATTEMPT_ENV: str(task.attempt)}
        # A session of its own: Ctrl-C in the worker's terminal must not reach the ranks.
        self._torchrun = subprocess.Popen(command, env=full_env, start_new_session=True)
        self.pid: int | None = self._torchrun.pid

    def poll(self, timeout_s: float) -> bool:
        if self._conn is not None:
            return self._conn.poll(timeout_s)
        ready, _, _ = select.select([self._server], [], [], timeout_s)
        if ready:
            accepted, _ = self._server.accept()
            self._conn = Connection(accepted.detach())
            # Rank 0 waits for this before it starts: its task's deadline is as old as the claim.
            self.send(LeaseRenewed(deadline=self._deadline))
            if self._stop_asked:
                self.send(Stop())
            return False
        return self._torchrun.poll() is not None  # it ended before rank 0 connected: recv says so

    def recv(self) -> Report:
        if self._conn is None:
            raise EOFError("torchrun ended before rank 0 connected")
        return _recv(self._conn)

    def send(self, message: Down) -> None:
        if isinstance(message, LeaseRenewed):
            self._deadline = message.deadline
        else:
            self._stop_asked = True
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(message)

    def end(self, *, reported: bool) -> None:
        if self._conn is not None:
            self._conn.close()
        self._server.close()
        try:
            if not reported:
                self._torchrun.send_signal(signal.SIGTERM)
            self._torchrun.wait(CHILD_EXIT_GRACE_S if reported else TORCHRUN_TERM_GRACE_S)
        except subprocess.TimeoutExpired:
            self._torchrun.kill()
            self._torchrun.wait()
        killed = kill_attempt(self._task.job_id, self._task.attempt)
        if killed:
            logger.warning(
                "job %s: killed %d processes that outlived torchrun", self._task.job_id, len(killed)
            )
        for path in sorted(self._dir.glob(FAILURE_FILE.format(rank="*"))):
            failure = json.loads(path.read_text())
            self._failure = (FailureReason(failure["reason"]), failure["message"])
            break
        shutil.rmtree(self._dir, ignore_errors=True)

    def death(self) -> tuple[FailureReason, str]:
        if self._failure is not None:
            return self._failure
        return (
            FailureReason.training_error,
            f"a rank of the training ended without reporting a result (torchrun exited with code "
            f"{self._torchrun.returncode}); the worker's log has torchrun's account of it",
        )


def _recv(conn: Connection) -> Report:
    """The next report, or EOFError once the other end is gone. Both ends are sockets (a duplex
    Pipe is a socketpair): one closed by a process killed with a message it had not read yet
    ends in a reset, not an end of file."""
    try:
        report: Report = conn.recv()
    except OSError as exc:
        raise EOFError(str(exc)) from exc
    return report


def pinned_gpus(visible: str | None, devices: int, kind: str) -> dict[str, str]:
    """The environment that gives a CUDA job's ranks the first `devices` of the worker's GPUs
    (`visible`: the worker's CUDA_VISIBLE_DEVICES, if set), as devices 0..N-1; nothing for CPU jobs."""
    if kind != "cuda":
        return {}
    gpus = [gpu.strip() for gpu in visible.split(",")] if visible else [str(i) for i in range(devices)]
    return {"CUDA_VISIBLE_DEVICES": ",".join(gpus[:devices])}


def death_reason(exitcode: int | None) -> tuple[FailureReason, str]:
    """Why a training process ended without reporting, from its exit code."""
    if exitcode == LEASE_EXPIRED_EXIT_CODE:
        return (
            FailureReason.worker_lost,
            "the worker did not renew the job's lease in time (it stalled, or its database did not "
            "answer), so the training process stopped itself before another worker could take the job",
        )
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        if -exitcode == signal.SIGKILL:
            return (
                FailureReason.out_of_memory,
                "the training process was killed by SIGKILL, most often the kernel's out-of-memory "
                "killer: lower batch_size or image_size, or give the worker more memory",
            )
        return FailureReason.training_error, f"the training process was killed by {name}"
    return (
        FailureReason.training_error,
        f"the training process exited with code {exitcode} without reporting a result",
    )


def failed_rank(run_dir: Path, rank: int, failure: Failed) -> None:
    """Leave a rank's failure where the supervisor looks when the training ends unreported."""
    (run_dir / FAILURE_FILE.format(rank=rank)).write_text(
        json.dumps({"reason": failure.reason, "message": failure.message})
    )
