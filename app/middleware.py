"""Guards in front of every route: a body size limit and the API key check.

Written as plain ASGI middleware so that every path, including ones added
later and the OpenAPI pages, is covered unless it is exempted here.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.security import ANONYMOUS, Authenticator

# The dashboard page (/) and its assets (/ui/...) load without a key, so that the page can ask for one.
OPEN_PATHS = frozenset({("GET", "/health"), ("HEAD", "/health"), ("GET", "/"), ("HEAD", "/")})
OPEN_PREFIXES = ("/ui/",)


def is_open(method: str, path: str) -> bool:
    """Reads of /health and of the dashboard's static files, which hold no job data; nothing else."""
    return (method, path) in OPEN_PATHS or (method in {"GET", "HEAD"} and path.startswith(OPEN_PREFIXES))


async def _send_error(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class RequireApiKey:
    """401 unless the request carries a configured key; records who is calling."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authenticator: Authenticator | None = scope["app"].state.authenticator
        principal = ANONYMOUS
        if authenticator is not None and not is_open(scope["method"], scope["path"]):
            headers = dict(scope["headers"])
            authorization = headers.get(b"authorization", b"").decode("latin-1")
            found = authenticator.authenticate(authorization)
            if found is None:
                challenge = 'Bearer realm="trainq"' + (', error="invalid_token"' if authorization else "")
                await _send_error(
                    send,
                    401,
                    "an API key is required: send 'Authorization: Bearer <key>'"
                    if not authorization
                    else "the API key is not valid",
                    {"www-authenticate": challenge},
                )
                return
            principal = found
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


class _TooLarge(HTTPException):
    # An HTTPException, so that frameworks that wrap errors while parsing a body pass it on.
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the request body is larger than {limit} bytes")


class LimitBodySize:
    """413 for a body over the limit, before anything parses it (declared or streamed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit: int = scope["app"].state.settings.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_error(send, 413, str(_TooLarge(limit).detail))
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge as too_large:
            if not started:
                await _send_error(send, 413, str(too_large.detail))
