"""No process of a job outlives it.

torchrun starts each rank in a session of its own, so signalling torchrun's process group
does not reach the ranks. Three things close that gap:
- every process of a multi-device job carries TRAINQ_JOB_ID and TRAINQ_ATTEMPT in its
  environment, and `kill_attempt` kills whatever still carries them once torchrun is gone;
- torchrun is started through `python -m worker.orphans <worker pid> -- torchrun ...`, which
  asks the kernel to SIGKILL it when the worker dies (even by SIGKILL), then becomes torchrun;
- each rank asks the same of its parent, torchrun (`die_with_parent`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path

JOB_ID_ENV = "TRAINQ_JOB_ID"
ATTEMPT_ENV = "TRAINQ_ATTEMPT"
# torchrun's pid (the launcher's, which becomes torchrun), for its ranks to check their parent.
LAUNCHER_PID_ENV = "TRAINQ_LAUNCHER_PID"
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
KILL_WAIT_S = 10.0
_POLL_S = 0.05


def die_with_parent(expected_parent: int) -> None:
    """SIGKILL this process when its parent dies; exit now if `expected_parent` is already gone
    (this process was re-parented before it could ask)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != expected_parent:
        os._exit(1)


def name_process(job_id: str) -> str:
    """Name this process trainq-<first 8 characters of the job id> (what ps, top and pgrep show):
    a one-device job's process, forked from the worker's preloaded server, cannot carry the job
    in its /proc environment, but it can in its name. Returns the name."""
    name = f"trainq-{job_id[:8]}"
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_NAME, name.encode(), 0, 0, 0)
    return name


def processes_of(job_id: str, attempt: int | None = None) -> list[int]:
    """Pids of the processes whose environment names this job (and this attempt of it, if given)."""
    wanted = {f"{JOB_ID_ENV}={job_id}".encode()}
    if attempt is not None:
        wanted.add(f"{ATTEMPT_ENV}={attempt}".encode())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue  # gone meanwhile, or another user's
        if wanted <= environ:
            found.append(int(entry.name))
    return found


def kill_attempt(job_id: str, attempt: int, *, wait_s: float = KILL_WAIT_S) -> list[int]:
    """SIGKILL every process of this attempt and wait (up to `wait_s`) until none is left;
    returns the pids that were killed."""
    killed: list[int] = []
    deadline = time.monotonic() + wait_s
    while pids := [pid for pid in processes_of(job_id, attempt) if pid != os.getpid()]:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            if pid not in killed:
                killed.append(pid)
        if time.monotonic() >= deadline:
            break
        time.sleep(_POLL_S)
    return killed


def main(argv: list[str]) -> None:
    """`python -m worker.orphans <parent pid> -- command...`: die with the parent, then exec."""
    parent, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit("usage: python -m worker.orphans <parent pid> -- command...")
    die_with_parent(int(parent))
    os.environ[LAUNCHER_PID_ENV] = str(os.getpid())  # exec keeps the pid
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
