"""An attempt's files and the API, for a worker that shares no folder with it (TRAINQ_API_URL).

The resume checkpoint (or init_from's source) comes down before training starts; each checkpoint goes up before the
row that lists it is written, and the training log goes up as it grows and once at the end.
A transfer can take longer than a lease: while one runs, a thread renews the lease.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from app.artifacts import log_path
from app.queue import Lease
from worker.remote import ApiFailure, ApiFiles, StaleAttempt

logger = logging.getLogger(__name__)


class AttemptTransfers:
    def __init__(
        self,
        remote: ApiFiles,
        *,
        lease: Lease,
        job_dir: Path,
        renew: Callable[[], bool],
        lease_seconds: float,
    ) -> None:
        """`renew`: the supervisor's heartbeat, False once the lease is lost."""
        self._remote = remote
        self._lease = lease
        self._job_dir = job_dir
        self._renew = renew
        self._lease_seconds = lease_seconds
        self._log_uploaded_size = 0

    @contextlib.contextmanager
    def _keeping_lease(self) -> Iterator[threading.Event]:
        """Renew the lease from a thread while a transfer runs; the event is set if it was lost."""
        lost, done = threading.Event(), threading.Event()

        def renew() -> None:
            while not done.wait(self._lease_seconds / 4):
                if not self._renew():
                    lost.set()
                    return

        renewer = threading.Thread(target=renew, name=f"lease-{self._lease.job_id[:8]}", daemon=True)
        renewer.start()
        try:
            yield lost
        finally:
            done.set()
            renewer.join()

    def fetch_resume(self, *, into: Path) -> Path:
        """Download the lease's resume checkpoint into the folder `into` (its sha256 checked);
        StaleAttempt if the lease was lost meanwhile."""
        lease = self._lease
        assert lease.resume_file is not None
        local = into / ("resume-" + Path(lease.resume_file).name)
        self._fetch(job_id=lease.job_id, file_name=lease.resume_file, sha256=lease.resume_sha256, local=local)
        return local

    def fetch_init(self, *, job_id: str, file_name: str, sha256: str, into: Path) -> Path:
        """Download the checkpoint `file_name` of job `job_id` (init_from's source) into the folder
        `into`, as fetch_resume does."""
        local = into / ("init-" + Path(file_name).name)
        self._fetch(job_id=job_id, file_name=file_name, sha256=sha256, local=local)
        return local

    def _fetch(self, *, job_id: str, file_name: str, sha256: str | None, local: Path) -> None:
        with self._keeping_lease() as lost:
            self._remote.download(job_id=job_id, relative_name=file_name, sha256=sha256, into=local)
        if lost.is_set():
            raise StaleAttempt(f"the lease was lost while {file_name} of job {job_id} downloaded")

    def upload(self, file_name: str, sha256: str) -> bool:
        """Send one of this attempt's files (named relative to the job's folder); False if the
        lease is lost."""
        try:
            with self._keeping_lease() as lost:
                self._remote.upload_checkpoint(
                    job_id=self._lease.job_id,
                    attempt=self._lease.attempt,
                    path=self._job_dir / file_name,
                    sha256=sha256,
                )
        except StaleAttempt:
            return False
        return not lost.is_set()

    def upload_log(self, *, force: bool = False) -> None:
        """Send the log if it grew (`force`: even if not; the API then also removes this attempt's
        checkpoints that rows stopped listing). Best effort: a log that cannot be sent costs the
        user lines, never the job."""
        path = log_path(self._job_dir, self._lease.attempt)
        size = path.stat().st_size if path.is_file() else 0
        if size == self._log_uploaded_size and not force:
            return
        try:
            self._remote.upload_log(job_id=self._lease.job_id, attempt=self._lease.attempt, path=path)
        except (StaleAttempt, ApiFailure) as exc:
            logger.warning("job %s: the training log was not sent to the API: %s", self._lease.job_id, exc)
            return
        self._log_uploaded_size = size

    def finish(self, own_dir: Path) -> None:
        """Send the log a last time, then remove what this attempt wrote here: the API has it."""
        self.upload_log()
        # Other attempts' folders are theirs.
        shutil.rmtree(own_dir, ignore_errors=True)
        log_path(self._job_dir, self._lease.attempt).unlink(missing_ok=True)
        self._remote.close()
