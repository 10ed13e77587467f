"""A thin client for the trainq HTTP API: JSON in, JSON (as dicts) out, typed exceptions on errors."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from trainq.destination import check_target, make_folder, split_destination
from trainq.download import Download, fetch_checkpoint
from trainq.errors import NotFound, ServerUnreachable, TrainqError, error_for
from trainq.server_url import checked_url

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 30.0
MAX_PAGE_SIZE = 500
CHECKPOINT_REFS = ("latest", "best")

ProgressCallback = Callable[[int, int], None]


class Client:
    """Talks to one trainq server. `url` and `api_key` default to TRAINQ_URL and TRAINQ_API_KEY."""

    def __init__(
        self, url: str | None = None, api_key: str | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        if url is None:
            self.url = checked_url(os.environ.get("TRAINQ_URL") or DEFAULT_URL, "TRAINQ_URL")
        else:
            self.url = checked_url(url, "the server URL")
        key = api_key if api_key is not None else os.environ.get("TRAINQ_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- jobs -----------------------------------------------------------------

    def submit(
        self,
        hyperparameters: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        max_attempts: int | None = None,
        max_runtime_seconds: float | None = None,
        dry_run: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """The queued job; with dry_run, the resolved request and nothing queued."""
        body: dict[str, Any] = {"hyperparameters": dict(hyperparameters or {})}
        optional = {"name": name, "max_attempts": max_attempts, "max_runtime_seconds": max_runtime_seconds}
        body.update({key: value for key, value in optional.items() if value is not None})
        response = self._request(
            "POST",
            "/jobs",
            json=body,
            params={"dry_run": "true"} if dry_run else None,
            headers={"Idempotency-Key": idempotency_key} if idempotency_key else None,
        )
        return dict(response.json())

    def list_jobs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page, newest first: {"items": [...], "next_cursor": str | None}."""
        params: dict[str, Any] = {"status": [status] if isinstance(status, str) else list(status or [])}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        return dict(self._request("GET", "/jobs", params=params).json())

    def iter_jobs(
        self, *, status: str | Iterable[str] | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every job, newest first, fetching pages as they are consumed."""
        statuses = [status] if isinstance(status, str) else list(status or [])
        cursor: str | None = None
        while True:
            page = self.list_jobs(status=statuses, limit=min(page_size, MAX_PAGE_SIZE), cursor=cursor)
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def get_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("GET", _job_path(job_id)).json())

    def metrics(self, job_id: str, *, after_epoch: int = 0) -> list[dict[str, Any]]:
        """Metric rows of the epochs after `after_epoch`, in order."""
        response = self._request("GET", f"{_job_path(job_id)}/metrics", params={"after_epoch": after_epoch})
        return list(response.json())

    def cancel(self, job_id: str) -> dict[str, Any]:
        """The job, now cancelled; Conflict if it had already ended."""
        return dict(self._request("POST", f"{_job_path(job_id)}/cancel").json())

    def logs(self, job_id: str, *, tail: int | None = None, attempt: int | None = None) -> str:
        """The training log (every attempt, or one), or only its last `tail` lines."""
        params = {
            key: value for key, value in {"tail": tail, "attempt": attempt}.items() if value is not None
        }
        return self._request("GET", f"{_job_path(job_id)}/logs", params=params).text

    # --- checkpoints --------------------------------------------------------------

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        return list(self._request("GET", f"{_job_path(job_id)}/checkpoints").json())

    def checkpoint(self, job_id: str, ref: str | int = "best") -> dict[str, Any]:
        """The listed checkpoint that `ref` (latest, best or an epoch number) names right now."""
        listed = self.checkpoints(job_id)
        found: dict[str, Any] | None
        if ref == "latest":
            found = max(listed, key=lambda entry: int(entry["epoch"]), default=None)
        elif ref == "best":
            found = next((entry for entry in listed if entry["is_best"]), None)
        else:
            epoch = _epoch_number(ref)
            found = next((entry for entry in listed if entry["epoch"] == epoch), None)
        if found is None:
            raise NotFound(f"job {job_id} has no checkpoint {str(ref)!r}")
        return found

    def download_checkpoint(
        self,
        job_id: str,
        ref: str | int = "best",
        path: str | Path | None = None,
        *,
        progress: ProgressCallback | None = None,
        resume: bool = True,
        force: bool = False,
    ) -> Download:
        """Save a checkpoint, verified against its sha256, and return where it went.

        `path` is a file or a folder: None (the current folder), an existing folder or a path ending in '/'
        (created when missing) gets the server's file name. An existing file is replaced only with `force`;
        anything else that is not a regular file is refused. The bytes go to `<file>.part` first; with
        `resume`, an existing `.part` is continued with a Range request instead of starting over.
        `progress(done_bytes, total_bytes)` is called as bytes arrive.
        """
        folder, name = split_destination(path)
        if name is not None:
            # Before the checkpoint is looked up: a path that cannot be used is the first thing to hear about.
            check_target(folder / name, force=force)
        entry = self.checkpoint(job_id, ref)
        if name is None:
            head = self._request("HEAD", entry["url"])
            name = _attachment_name(head.headers.get("content-disposition"), job_id, entry)
            make_folder(folder)
            check_target(folder / name, force=force)
        with self._http_errors_raised():
            return fetch_checkpoint(self._http, entry, folder / name, progress=progress, resume=resume)

    # --- plumbing -----------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._http_errors_raised():
            response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise error_for(response)
        return response

    @contextmanager
    def _http_errors_raised(self) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.url, exc) from exc


def _job_path(job_id: str) -> str:
    # Quoted so an id typed by a person can never address another route.
    return f"/jobs/{quote(job_id, safe='')}"


def _epoch_number(ref: str | int) -> int:
    try:
        return int(ref)
    except ValueError:
        raise TrainqError(f"checkpoint must be 'latest', 'best' or an epoch number, not {ref!r}") from None


def _attachment_name(disposition: str | None, job_id: str, entry: Mapping[str, Any]) -> str:
    message = Message()
    message["content-disposition"] = disposition or ""
    # Only the last path component: a server must not be able to write outside the chosen folder.
    name = Path(message.get_filename() or "").name
    return name or f"{job_id}-epoch{entry['epoch']}.pt"
