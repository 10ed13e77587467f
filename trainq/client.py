"""A thin client for the trainq HTTP API: JSON in, JSON (as dicts) out, typed exceptions on errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any

import httpx

from trainq.connection import DEFAULT_TIMEOUT_S as DEFAULT_TIMEOUT_S
from trainq.connection import DEFAULT_URL as DEFAULT_URL
from trainq.connection import job_path, sweep_path
from trainq.errors import ServerUnreachable, TrainqError, WaitTimedOut, error_for
from trainq.job_events import FINAL_STATUSES, EndEvent, Event, parse_sse, typed_event
from trainq.transfers import CHECKPOINT_REFS as CHECKPOINT_REFS
from trainq.transfers import ProgressCallback as ProgressCallback
from trainq.transfers import Transfers

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 500
WAIT_POLL_INTERVAL_S = 1.0
# The server sends a keep-alive every 15 s; a stream silent for this long is gone.
STREAM_READ_TIMEOUT_S = 60.0
# Reconnections in a row without an event in between before watch() gives up.
MAX_RECONNECTS = 5
RECONNECT_DELAY_S = 1.0


class Client(Transfers):
    """Talks to one trainq server. `url` and `api_key` default to TRAINQ_URL and TRAINQ_API_KEY.

    Jobs and sweeps are here; checkpoints and exports in trainq/transfers.py, the connection in
    trainq/connection.py."""

    # --- jobs -----------------------------------------------------------------

    def submit(
        self,
        hyperparameters: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        max_attempts: int | None = None,
        max_runtime_seconds: float | None = None,
        resources: Mapping[str, Any] | None = None,
        dry_run: bool = False,
        idempotency_key: str | None = None,
        priority: int | None = None,
        tags: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """The queued job; with dry_run, the resolved request and nothing queued.

        `resources`: what the job needs from a worker, e.g. {"devices": 2, "labels": ["a100"]}
        (the server's default, when None: one device, no labels). `priority`: higher is claimed
        first (the server's default, when None: 0). `tags`: what to find the job by later."""
        body: dict[str, Any] = {"hyperparameters": dict(hyperparameters or {})}
        optional = {
            "name": name,
            "max_attempts": max_attempts,
            "max_runtime_seconds": max_runtime_seconds,
            "resources": dict(resources) if resources is not None else None,
            "priority": priority,
            "tags": list(tags) if tags is not None else None,
        }
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
        tag: str | Iterable[str] | None = None,
        name: str | None = None,
        model: str | None = None,
        dataset: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        sweep: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page: {"items": [...], "next_cursor": str | None}, newest first unless `sort` (one
        of trainq.choices.SORTS) says otherwise. Every filter given must hold: `status` any of
        them, `tag` all of them, `name` a substring in any case, `created_after` inclusive,
        `created_before` exclusive (ISO 8601 strings or datetimes; without a zone: UTC), `sweep`
        a sweep's id."""
        params: dict[str, Any] = {
            "status": _listed(status),
            "tag": _listed(tag),
            "name": name,
            "model": model,
            "dataset": dataset,
            "created_after": _iso(created_after),
            "created_before": _iso(created_before),
            "sweep": sweep,
            "sort": sort,
            "limit": limit,
            "cursor": cursor,
        }
        given = {key: value for key, value in params.items() if value is not None}
        return dict(self._request("GET", "/jobs", params=given).json())

    def iter_jobs(self, *, page_size: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every job that list_jobs' filters and sort (given as keywords) select, fetching pages
        of `page_size` as they are consumed."""
        cursor: str | None = None
        while True:
            page = self.list_jobs(**filters, limit=min(page_size, MAX_PAGE_SIZE), cursor=cursor)
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def get_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("GET", job_path(job_id)).json())

    def metrics(self, job_id: str, *, after_epoch: int = 0) -> list[dict[str, Any]]:
        """Metric rows of the epochs after `after_epoch`, in order."""
        response = self._request("GET", f"{job_path(job_id)}/metrics", params={"after_epoch": after_epoch})
        return list(response.json())

    def update_job(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """Change what `fields` name and nothing else (PATCH): `name` and `notes` (None clears
        them), `tags` (replaces the list) and `priority` (only while queued, else Conflict).
        Returns the job."""
        return dict(self._request("PATCH", job_path(job_id), json=fields).json())

    def cancel(self, job_id: str) -> dict[str, Any]:
        """The job, now cancelled; Conflict if it had already ended."""
        return dict(self._request("POST", f"{job_path(job_id)}/cancel").json())

    def delete_job(self, job_id: str) -> None:
        """Delete an ended job with its files; Conflict if it is queued or running (cancel it first)."""
        self._request("DELETE", job_path(job_id))

    def logs(self, job_id: str, *, tail: int | None = None, attempt: int | None = None) -> str:
        """The training log (every attempt, or one), or only its last `tail` lines."""
        params = {
            key: value for key, value in {"tail": tail, "attempt": attempt}.items() if value is not None
        }
        return self._request("GET", f"{job_path(job_id)}/logs", params=params).text

    def wait(
        self, job_id: str, *, timeout: float | None = None, poll_interval_s: float = WAIT_POLL_INTERVAL_S
    ) -> dict[str, Any]:
        """The job once it has ended (succeeded, failed or cancelled: check its status).

        Raises WaitTimedOut (a TimeoutError) if it has not ended within `timeout` seconds (None: no limit);
        the job itself is left as it is."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job: dict[str, Any] = {}
        etag: str | None = None
        while True:
            # With the last ETag, an unchanged job costs the server a 304 and no body.
            response = self._request(
                "GET", job_path(job_id), headers={"If-None-Match": etag} if etag else None
            )
            if response.status_code != HTTPStatus.NOT_MODIFIED:
                job, etag = dict(response.json()), response.headers.get("etag")
            if job["status"] in FINAL_STATUSES:
                return job
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimedOut(job_id, job["status"], float(timeout or 0))
            time.sleep(poll_interval_s if left is None else min(poll_interval_s, left))

    def watch(self, job_id: str, *, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's events in order, from its first (or after `last_event_id`, an event's `event_id`),
        live until its EndEvent, which is the last. A dropped connection is resumed after the last
        event received, so none is lost or repeated."""
        reconnects = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            timeout = httpx.Timeout(self._http.timeout.connect, read=STREAM_READ_TIMEOUT_S)
            try:
                with self._http.stream(
                    "GET", f"{job_path(job_id)}/events", headers=headers, timeout=timeout
                ) as response:
                    if response.is_error:
                        response.read()
                        raise error_for(response)
                    for raw in parse_sse(response.iter_lines()):
                        reconnects = 0
                        last_event_id = raw.id or last_event_id
                        event = typed_event(raw)
                        if event is None:
                            continue
                        yield event
                        if isinstance(event, EndEvent):
                            return
            except httpx.TransportError as exc:
                if reconnects >= MAX_RECONNECTS:
                    raise ServerUnreachable(self.url, exc) from exc
            else:
                if reconnects >= MAX_RECONNECTS:
                    raise TrainqError(f"the event stream of job {job_id} keeps closing before the job's end")
            # Closed or dropped before the end (a restarting server): resume after the last event.
            reconnects += 1
            logger.info("job %s: event stream interrupted, reconnecting (%d)", job_id, reconnects)
            time.sleep(RECONNECT_DELAY_S)

    # --- sweeps -----------------------------------------------------------------

    def submit_sweep(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Queue a sweep (a POST /sweeps body: name, method, base, parameters, trials, seed,
        max_parallel); returns it with its jobs. InvalidRequest names a combination that is not a job."""
        return dict(self._request("POST", "/sweeps", json=dict(body)).json())

    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        """The sweep with its jobs, best first (by best_val_accuracy; jobs without one last)."""
        return dict(self._request("GET", sweep_path(sweep_id)).json())

    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        """Cancel the sweep's queued and running jobs; returns the sweep as it is then."""
        return dict(self._request("POST", f"{sweep_path(sweep_id)}/cancel").json())


def _listed(values: str | Iterable[str] | None) -> list[str] | None:
    # One string is one value, not its characters.
    if values is None:
        return None
    return [values] if isinstance(values, str) else list(values)


def _iso(moment: datetime | str | None) -> str | None:
    return moment.isoformat() if isinstance(moment, datetime) else moment
