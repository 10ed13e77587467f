"""A full disk is a clear, retryable failure (disk_full), however torch's writer wraps it."""

from __future__ import annotations

import errno
import multiprocessing
import resource
import signal
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
import torch

from worker.training import DiskFullError, disk_full_error
from worker.training.checkpoint import write_checkpoint

FILE_SIZE_LIMIT_BYTES = 64 * 1024


def _write_past_the_file_size_limit(folder: Path, reply: Connection) -> None:
    # A file size limit fails writes past it with EFBIG, as a full disk does with ENOSPC;
    # SIGXFSZ would otherwise end the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT_BYTES, FILE_SIZE_LIMIT_BYTES))
    try:
        write_checkpoint({"weights": torch.zeros(1024, 1024)}, folder, epoch=1)
    except Exception as exc:
        reply.send((type(exc).__name__, getattr(exc, "reason", None), str(exc)))
    else:
        reply.send(None)


def test_a_checkpoint_that_does_not_fit_on_the_disk_is_a_disk_full_error_naming_the_folder(
    tmp_path: Path,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    reply_out, reply_in = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_write_past_the_file_size_limit, args=(tmp_path, reply_in))
    process.start()
    assert reply_out.poll(60)
    failure = reply_out.recv()
    process.join(30)

    assert failure is not None, "the write did not fail"
    name, reason, message = failure
    assert (name, reason) == ("DiskFullError", "disk_full")
    assert str(tmp_path.resolve()) in message
    assert "MiB free" in message
    assert list(tmp_path.iterdir()) == []  # the partial file is gone


def test_disk_full_is_found_behind_the_errors_that_wrap_it() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos") from exc
    except RuntimeError as wrapped:
        found = disk_full_error(wrapped)
    assert isinstance(found, DiskFullError)
    assert found.reason == "disk_full"
    assert disk_full_error(OSError(errno.EACCES, "Permission denied")) is None
    assert disk_full_error(RuntimeError("unexpected pos")) is None


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT])
def test_every_kind_of_full_disk_is_disk_full(code: int) -> None:
    assert disk_full_error(OSError(code, "full")) is not None
