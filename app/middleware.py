"""Guards in front of every route: a body size limit and the API key (or, without keys, peer) check.

Written as plain ASGI middleware so that every path, including ones added
later and the OpenAPI pages, is covered unless it is exempted here.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.security import ANONYMOUS, GENERATE_KEY_HINT, Authenticator, is_remote_peer

# The dashboard page (/) and its assets (/ui/...) load without a key, so that the page can ask for one.
OPEN_PATHS = frozenset({("GET", "/health"), ("HEAD", "/health"), ("GET", "/"), ("HEAD", "/")})
OPEN_PREFIXES = ("/ui/",)
# Workers' uploads of checkpoints and logs: streamed to disk by their route, which sets their limits.
STREAMED_UPLOAD = re.compile(r"/jobs/[^/]+/attempts/[^/]+/(?:files/[^/]+|log)")


def is_open(method: str, path: str) -> bool:
    """Reads of /health and of the dashboard's static files, which hold no job data; nothing else."""
    return (method, path) in OPEN_PATHS or (method in {"GET", "HEAD"} and path.startswith(OPEN_PREFIXES))


async def _send_error(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


# Without keys every caller is the anonymous owner who sees every job: only this machine may call.
LOCAL_ONLY_DETAIL = (
    "this API has no keys, so it answers only requests from this machine; on the server, set "
    f"TRAINQ_API_KEYS='owner:key' (or TRAINQ_API_KEYS_FILE), {GENERATE_KEY_HINT}, then send "
    "'Authorization: Bearer <key>'"
)


class RequireApiKey:
    """401 unless the request carries a configured key; records who is calling. Without keys,
    403 for a peer on another machine (unless TRAINQ_ALLOW_ANONYMOUS), whatever address the
    server was told to bind: the start-up check can only see uvicorn's own arguments."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        authenticator: Authenticator | None = state.authenticator
        principal = ANONYMOUS
        if authenticator is None:
            if not state.settings.allow_anonymous and is_remote_peer(scope.get("client")):
                await _send_error(send, 403, LOCAL_ONLY_DETAIL)
                return
        elif not is_open(scope["method"], scope["path"]):
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


class LimitBodySize:
    """413 for a body over the limit, declared or streamed, before the route runs (workers'
    uploads excepted: they stream to disk).

    The body is read (up to the limit) before the app is called, not counted as the app reads it:
    a route that ignores its body still reads messages to notice a disconnect (file and event
    stream responses do), and a body found too large after its response started could then
    neither be answered with a 413 nor stop the response cleanly."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "PUT" and STREAMED_UPLOAD.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"content-length" not in headers and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body (RFC 9112 6.3): most GETs, passed on as they are
            return
        limit: int = scope["app"].state.settings.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse_too_large(send, limit)
            return
        received: list[Message] = []
        size = 0
        while not received or received[-1].get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > limit:
                await _refuse_too_large(send, limit)
                return
            received.append(message)

        async def replay_then_receive() -> Message:
            return received.pop(0) if received else await receive()

        await self.app(scope, replay_then_receive, send)


async def _refuse_too_large(send: Send, limit: int) -> None:
    # Closing the connection stops a client that would go on sending the rest of the body.
    await _send_error(send, 413, f"the request body is larger than {limit} bytes", {"connection": "close"})
