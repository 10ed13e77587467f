"""The HTTP connection every part of the client shares: the server's URL and key, and errors as TrainqError."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from trainq.errors import ServerUnreachable, error_for
from trainq.server_url import checked_url

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 30.0


class Connection:
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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

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


def job_path(job_id: str) -> str:
    # Quoted so an id typed by a person can never address another route.
    return f"/jobs/{quote(job_id, safe='')}"


def sweep_path(sweep_id: str) -> str:
    return f"/sweeps/{quote(sweep_id, safe='')}"
