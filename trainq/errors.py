"""What can go wrong talking to a trainq server, as exceptions whose message says what to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class TrainqError(Exception):
    """Base of every error the client raises; str() is a one-line message for a person."""


class ServerUnreachable(TrainqError):
    """No HTTP answer at all: refused, timed out, DNS failure."""

    def __init__(self, url: str, cause: Exception) -> None:
        super().__init__(f"the trainq server at {url} is not reachable ({_describe(cause)}); is it running?")
        self.url = url


class HTTPError(TrainqError):
    """The server answered with an error status not covered by a subclass below."""

    def __init__(self, status_code: int, detail: str, message: str | None = None) -> None:
        super().__init__(message or f"{detail} (HTTP {status_code})")
        self.status_code = status_code
        self.detail = detail


class Unauthorized(HTTPError):
    """401: the server wants an API key, or not the one sent."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            401, detail, f"{detail}: set TRAINQ_API_KEY (or pass --api-key) to a key the server accepts"
        )


class NotFound(HTTPError):
    """404: no such job or checkpoint (or another owner's)."""

    def __init__(self, detail: str) -> None:
        super().__init__(404, detail, detail)


class Conflict(HTTPError):
    """409: the job already ended, or an Idempotency-Key was reused with another body."""

    def __init__(self, detail: str) -> None:
        super().__init__(409, detail, detail)


@dataclass(frozen=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str

    @property
    def field(self) -> str:
        # The first element only says where the field was sent (body, query, header).
        parts = self.loc[1:] if self.loc and self.loc[0] in {"body", "query", "header", "path"} else self.loc
        return ".".join(str(part) for part in parts) or "request"

    def __str__(self) -> str:
        return f"{self.field}: {self.msg}"


class InvalidRequest(HTTPError):
    """422: one entry per bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        listed = "; ".join(str(error) for error in errors)
        super().__init__(422, listed, f"the server rejected the request: {listed}")
        self.errors = errors


class WaitTimedOut(TrainqError, TimeoutError):
    """Client.wait gave up: the job had not ended within the time allowed (it goes on, untouched)."""

    def __init__(self, job_id: str, status: str, timeout_s: float) -> None:
        super().__init__(
            f"job {job_id} is still {status} after {timeout_s:g}s; wait longer, or check why with "
            f"`trainq show {job_id}`"
        )
        self.job_id = job_id
        self.status = status
        self.timeout_s = timeout_s


class ChecksumMismatch(TrainqError):
    """A downloaded file does not hash to the sha256 the server listed for it."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(
            f"sha256 mismatch for {path}: expected {expected}, got {actual}; "
            "the partial file was removed, run the download again"
        )
        self.expected = expected
        self.actual = actual


def error_for(response: httpx.Response) -> HTTPError:
    """The exception for an error response; the server's detail is kept as it said it."""
    detail: Any
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if response.status_code == 422 and isinstance(detail, list):
        return InvalidRequest([_field_error(entry) for entry in detail])
    text = detail if isinstance(detail, str) else (response.text.strip()[:200] or response.reason_phrase)
    if response.status_code == 401:
        return Unauthorized(text)
    if response.status_code == 404:
        return NotFound(text)
    if response.status_code == 409:
        return Conflict(text)
    return HTTPError(response.status_code, text)


def _field_error(entry: Any) -> FieldError:
    if not isinstance(entry, dict):
        return FieldError(loc=(), msg=str(entry))
    return FieldError(loc=tuple(entry.get("loc") or ()), msg=str(entry.get("msg", "invalid")))


def _describe(cause: Exception) -> str:
    if isinstance(cause, httpx.TimeoutException):
        return "timed out"
    if isinstance(cause, httpx.ConnectError):
        return "connection refused or host unknown"
    return type(cause).__name__
