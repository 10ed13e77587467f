"""A worker's link to the API when it shares no disk with it (TRAINQ_API_URL is set).

The worker trains into its own TRAINQ_ARTIFACTS_DIR and sends each checkpoint and its training
log to the API, which stores them where users download them; to resume a job that another host
started, it fetches the checkpoint from the API and checks its sha256. Connection failures and
5xx answers are retried with backoff; 409 means the attempt no longer holds the job.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

import httpx
from pydantic import SecretStr

from app.contract import FailureReason
from app.uploads import content_digest, temporary_path

logger = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
# Long enough for a large checkpoint on a slow link: it bounds the time between two reads or writes.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
READ_CHUNK_BYTES = 1024 * 1024
T = TypeVar("T")
# No job has this id: asking for its files answers 404 to a worker's key, 401 or 403 to others.
ACCESS_PROBE_JOB = "access-check"


class StaleAttempt(Exception):
    """The API refused the request because this attempt no longer holds the job."""


class ApiFailure(Exception):
    """The API could not take or give a file; `reason` is the job's failure reason."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(READ_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class ApiFiles:
    """Uploads and downloads of one worker's attempt files, over one connection pool."""

    def __init__(self, http: httpx.Client, *, retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S) -> None:
        self._http = http
        self._retry_delays_s = retry_delays_s

    @classmethod
    def connect(cls, base_url: str, api_key: SecretStr | None) -> ApiFiles:
        headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
        return cls(httpx.Client(base_url=base_url, headers=headers, timeout=TIMEOUT))

    def close(self) -> None:
        self._http.close()

    def check_access(self) -> None:
        """ApiFailure("api_refused") if the API refuses this worker's key; an API that does not
        answer yet is only logged (jobs wait for it with their retries)."""
        try:
            response = self._http.head(f"/jobs/{ACCESS_PROBE_JOB}/attempts/1/files/probe")
        except httpx.TransportError as exc:
            logger.warning("the API at %s does not answer yet: %s", self._http.base_url, exc)
            return
        if response.status_code in {401, 403}:
            _raise_for(response, "reach the API's worker routes")

    def upload_checkpoint(self, *, job_id: str, attempt: int, path: Path, sha256: str) -> None:
        self._upload(f"/jobs/{job_id}/attempts/{attempt}/files/{path.name}", path, sha256)

    def upload_log(self, *, job_id: str, attempt: int, path: Path) -> None:
        if path.is_file():
            self._upload(f"/jobs/{job_id}/attempts/{attempt}/log", path, file_sha256(path))

    def download(self, *, job_id: str, relative_name: str, sha256: str | None, into: Path) -> None:
        """Fetch a listed file (`attempt-N/name`) to `into`, put in place only once its sha256 matches
        (None: a hand-back written before digests were kept, checked only when it is loaded)."""
        attempt_folder, _, name = relative_name.partition("/")
        attempt = attempt_folder.removeprefix("attempt-")
        url = f"/jobs/{job_id}/attempts/{attempt}/files/{name}"

        def fetch() -> None:
            temporary = temporary_path(into)
            into.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            try:
                with self._http.stream("GET", url) as response, temporary.open("wb") as file:
                    _raise_for(response, f"download {relative_name}")
                    for chunk in response.iter_bytes(READ_CHUNK_BYTES):
                        digest.update(chunk)
                        file.write(chunk)
                if sha256 is not None and digest.hexdigest() != sha256:
                    raise _Transient(f"it arrived with sha256 {digest.hexdigest()}, not {sha256}")
                os.replace(temporary, into)
            finally:
                temporary.unlink(missing_ok=True)

        self._retrying(fetch, f"download {relative_name}")

    def _upload(self, url: str, path: Path, sha256: str) -> None:
        def send() -> None:
            with path.open("rb") as body:
                response = self._http.put(
                    url,
                    content=_chunks(body),
                    headers={
                        "Content-Digest": content_digest(sha256),
                        "Content-Length": str(path.stat().st_size),
                        "Content-Type": "application/octet-stream",
                    },
                )
            _raise_for(response, f"upload {path.name}")

        self._retrying(send, f"upload {path.name}")

    def _retrying(self, attempt: Callable[[], T], what: str) -> T:
        for delay_s in self._retry_delays_s:
            try:
                return attempt()
            except (httpx.TransportError, _Transient) as exc:
                logger.warning("could not %s (%s); trying again in %g s", what, exc, delay_s)
                time.sleep(delay_s)
        try:
            return attempt()
        except (httpx.TransportError, _Transient) as exc:
            raise ApiFailure(
                FailureReason.api_unreachable, f"could not {what} at {self._http.base_url}: {exc}"
            ) from exc


class _Transient(Exception):
    """A failure that may pass: a 5xx answer, or a download damaged on the way."""


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    while chunk := file.read(READ_CHUNK_BYTES):
        yield chunk


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code < 300:
        return
    response.read()
    detail = _detail(response)
    if response.status_code == 409:
        raise StaleAttempt(f"{what}: {detail}")
    if response.status_code == 507:
        raise ApiFailure(FailureReason.disk_full, f"{what}: {detail}")
    if response.status_code >= 500:
        raise _Transient(f"HTTP {response.status_code}: {detail}")
    raise ApiFailure(
        FailureReason.api_refused,
        f"{what}: the API answered {response.status_code}: {detail} (check TRAINQ_API_URL and that "
        "TRAINQ_API_KEY belongs to the owner 'worker')",
    )


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json()["detail"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
