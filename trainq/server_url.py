"""A trainq server's address, checked once, so a URL that cannot work is reported as such, not as a
server that does not answer."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from trainq.errors import TrainqError


def checked_url(url: str, source: str) -> str:
    """`url` without a trailing '/', once httpx can use it as a server's address; `source` names it in errors."""
    problem = _url_problem(url)
    if problem:
        raise TrainqError(f"{source} {url!r} {problem}")
    return url.rstrip("/")


def _url_problem(url: str) -> str | None:
    if not url:
        return "is empty"
    if any(char.isspace() or not char.isprintable() for char in url):
        return "contains a space or a control character"
    if "://" not in url:
        return f"has no scheme; add http:// (http://{url})"
    scheme = url.split("://", 1)[0]
    if scheme.lower() not in ("http", "https"):
        return f"must start with http:// or https://, not {scheme}://"
    try:
        # urlsplit names what is wrong (an unclosed '[', a port out of range) where httpx is vaguer or lax.
        port = urlsplit(url).port
        host = httpx.URL(url).host
    except (ValueError, httpx.InvalidURL) as exc:
        return f"is not a valid URL: {exc}"
    if not host:
        return "has no host"
    return "has port 0" if port == 0 else None
