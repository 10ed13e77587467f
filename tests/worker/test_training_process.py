from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from app.contract import CpuThreads
from tests.support.polling import wait_for
from worker.protocol import (
    LEASE_EXPIRED_EXIT_CODE,
    PARENT_GONE_EXIT_CODE,
    LeaseClock,
    LeaseRenewed,
    Stop,
    TrainingTask,
)
from worker.training import loader_workers
from worker.training_log import CappedFileHandler
from worker.training_process import PipeCallbacks, _in_trainq_terms, _watch_parent

FAR_S = 600.0


def _watch(
    conn: Connection, lease_s: float = FAR_S, *, finished: bool = False
) -> tuple[threading.Thread, threading.Event, LeaseClock]:
    stop, done, lease = threading.Event(), threading.Event(), LeaseClock(time.monotonic() + lease_s)
    if finished:
        done.set()
    watcher = threading.Thread(target=_watch_parent, args=(conn, stop, lease, done), daemon=True)
    watcher.start()
    return watcher, stop, lease


def _busy_training_process(conn: Connection, lease_s: float) -> None:
    # Stands in for a long batch: the main thread never touches the pipe.
    _watch(conn, lease_s)
    time.sleep(FAR_S)


def _stoppable_training_process(conn: Connection, reply: Connection, lease_s: float = FAR_S) -> None:
    _, stop, lease = _watch(conn, lease_s)
    reply.send((stop.wait(timeout=30), lease.deadline))


def _finished_training_process(conn: Connection, reply: Connection) -> None:
    watcher, _, _ = _watch(conn, finished=True)
    reply.send("reported")
    watcher.join(timeout=30)  # returns once the supervisor hangs up, unless the watcher ends the process


def test_a_training_process_exits_when_its_worker_is_gone_even_mid_batch() -> None:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_busy_training_process, args=(child, FAR_S))
    process.start()
    child.close()
    try:
        parent.close()  # what the kernel does when the worker dies, even by SIGKILL
        wait_for(lambda: process.exitcode is not None, timeout_s=30, what="the training process to exit")
        assert process.exitcode == PARENT_GONE_EXIT_CODE
    finally:
        process.kill()
        process.join()


def test_a_training_process_exits_by_itself_when_its_lease_runs_out_though_its_worker_lives() -> None:
    # A stalled worker (SIGSTOP, a hung database call) keeps the pipe open but renews nothing.
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_busy_training_process, args=(child, 0.5))
    process.start()
    child.close()
    try:
        wait_for(lambda: process.exitcode is not None, timeout_s=30, what="the training process to exit")
        assert process.exitcode == LEASE_EXPIRED_EXIT_CODE
    finally:
        process.kill()
        process.join()
        parent.close()


def test_a_renewal_moves_the_lease_deadline_and_stop_sets_the_stop_flag() -> None:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    reply_out, reply_in = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_stoppable_training_process, args=(child, reply_in))
    process.start()
    renewed = time.monotonic() + 2 * FAR_S
    parent.send(LeaseRenewed(deadline=renewed))
    parent.send(Stop())
    assert reply_out.poll(30)
    assert reply_out.recv() == (True, renewed)
    process.join(30)
    parent.close()


def test_a_renewal_waiting_when_the_process_starts_counts_though_its_first_deadline_passed() -> None:
    # torchrun's ranks take seconds to start; the renewals sent meanwhile wait in the connection.
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    reply_out, reply_in = ctx.Pipe(duplex=False)
    renewed = time.monotonic() + FAR_S
    parent.send(LeaseRenewed(deadline=renewed))
    process = ctx.Process(target=_stoppable_training_process, args=(child, reply_in, -1.0))
    process.start()
    parent.send(Stop())
    assert reply_out.poll(30), f"exit code {process.exitcode}"
    assert reply_out.recv() == (True, renewed)
    process.join(30)
    parent.close()


def test_a_training_process_that_reported_its_end_is_not_killed_when_its_worker_hangs_up() -> None:
    # A graceful hand-back: the supervisor closes the pipe as soon as it has the result. That is
    # no reason to exit with an error (nor to write "supervising worker is gone" into the log).
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    reply_out, reply_in = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_finished_training_process, args=(child, reply_in))
    process.start()
    child.close()
    assert reply_out.poll(30)
    assert reply_out.recv() == "reported"
    parent.close()
    process.join(30)
    assert process.exitcode == 0


@contextmanager
def _logger_writing_to(handler: logging.Handler) -> Iterator[logging.Logger]:
    log = logging.getLogger(f"test.runner.{id(handler)}")
    log.addHandler(handler)
    log.propagate = False
    try:
        yield log
    finally:
        log.removeHandler(handler)
        handler.close()


def test_a_chatty_training_log_stops_at_its_cap_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "attempt-1.log"
    with _logger_writing_to(CappedFileHandler(path, max_bytes=4096)) as log:
        for i in range(1000):
            log.warning("line %04d of a job that logs too much", i)
    lines = path.read_text().splitlines()
    assert path.stat().st_size <= 4096 + 100
    assert lines[0] == "line 0000 of a job that logs too much"
    assert lines[-1].startswith("... log truncated")
    assert len(lines) > 50


def test_an_attempt_whose_lease_ran_out_writes_no_more_log_lines(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "attempt-1.log"
    lease = LeaseClock(time.monotonic() + FAR_S)
    with _logger_writing_to(CappedFileHandler(path, max_bytes=4096, lease=lease)) as log:
        log.warning("written while the lease holds")
        lease.deadline = time.monotonic() - 1
        log.warning("written after another attempt may have started")
    assert path.read_text().splitlines() == ["written while the lease holds"]


def test_a_log_on_a_full_disk_says_so_once_instead_of_a_traceback_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = tmp_path / "logs" / "attempt-1.log"
    full.parent.mkdir()
    full.symlink_to("/dev/full")  # every write fails with ENOSPC
    with _logger_writing_to(CappedFileHandler(full, max_bytes=1024 * 1024)) as log:
        for i in range(50):
            log.warning("line %d", i)
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1, errors
    assert "No space left on device" in errors[0]


def test_failure_messages_name_the_workers_folders_by_their_settings() -> None:
    task = TrainingTask(
        job_id="j1",
        attempt=1,
        hyperparameters={},
        data_dir="/srv/trainq/data",
        job_dir="/srv/trainq/artifacts/j1",
        checkpoint_dir="/srv/trainq/artifacts/j1/attempt-1",
        resume_from=None,
        log_file="/srv/trainq/artifacts/j1/logs/attempt-1.log",
        max_log_bytes=4096,
        lease_deadline=0.0,
        cpu_threads=1,
    )
    message = (
        "put the files into /srv/trainq/data/MNIST/raw/; cannot read checkpoint "
        "/srv/trainq/artifacts/j1/attempt-1/epoch-0001.pt; /srv/trainq/data2 is another folder"
    )
    assert _in_trainq_terms(message, task) == (
        "put the files into TRAINQ_DATA_DIR/MNIST/raw/; cannot read checkpoint "
        "TRAINQ_ARTIFACTS_DIR/j1/attempt-1/epoch-0001.pt; /srv/trainq/data2 is another folder"
    )


def test_the_pipe_to_the_supervisor_is_kept_from_dataloader_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader_workers, "_KEPT_FROM_WORKERS", weakref.WeakSet())
    parent, child = multiprocessing.Pipe()
    with parent, child:
        PipeCallbacks(child, tmp_path, CpuThreads(intra_op=1, inter_op=1))

        assert set(loader_workers._KEPT_FROM_WORKERS) == {child}
