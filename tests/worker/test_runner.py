from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from tests.support.polling import wait_for
from worker.runner import PARENT_GONE_EXIT_CODE, CappedFileHandler, _watch_parent


def _busy_training_process(conn: Connection) -> None:
    # Stands in for a long batch: the main thread never touches the pipe.
    threading.Thread(target=_watch_parent, args=(conn, threading.Event()), daemon=True).start()
    time.sleep(600)


def _stoppable_training_process(conn: Connection, reply: Connection) -> None:
    stop = threading.Event()
    threading.Thread(target=_watch_parent, args=(conn, stop), daemon=True).start()
    reply.send(stop.wait(timeout=30))


def test_a_training_process_exits_when_its_worker_is_gone_even_mid_batch() -> None:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_busy_training_process, args=(child,))
    process.start()
    child.close()
    try:
        parent.close()  # what the kernel does when the worker dies, even by SIGKILL
        wait_for(lambda: process.exitcode is not None, timeout_s=30, what="the training process to exit")
        assert process.exitcode == PARENT_GONE_EXIT_CODE
    finally:
        process.kill()
        process.join()


def test_stop_from_the_worker_sets_the_stop_flag() -> None:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    reply_out, reply_in = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_stoppable_training_process, args=(child, reply_in))
    process.start()
    parent.send("stop")
    assert reply_out.poll(30)
    assert reply_out.recv() is True
    process.join(30)
    parent.close()


def test_a_chatty_training_log_stops_at_its_cap_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "attempt-1.log"
    handler = CappedFileHandler(path, max_bytes=4096)
    log = logging.getLogger("test.chatty")
    log.addHandler(handler)
    log.propagate = False
    try:
        for i in range(1000):
            log.warning("line %04d of a job that logs too much", i)
    finally:
        log.removeHandler(handler)
        handler.close()
    lines = path.read_text().splitlines()
    assert path.stat().st_size <= 4096 + 100
    assert lines[0] == "line 0000 of a job that logs too much"
    assert lines[-1].startswith("... log truncated")
    assert len(lines) > 50
