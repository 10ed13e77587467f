"""The web dashboard: one static page at / and its assets under /ui.

Both are served without an API key (see app.middleware) so that the page can load and then ask
for one; every call the page makes to the API carries the key. Nothing here reads job data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

from app.deps import KnownQueryRoute

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
ASSETS_PATH = "/ui"

# The page runs only its own files and talks only to this server: no inline script, nothing from
# elsewhere, no framing. A job name that slipped past escaping still could not run code.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page is small and changes with each release; always revalidate it.
    "Cache-Control": "no-cache",
}

router = APIRouter(route_class=KnownQueryRoute, tags=["dashboard"], include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"], response_class=FileResponse)
def dashboard() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


def assets() -> StaticFiles:
    """The page's scripts and styles, mounted at ASSETS_PATH."""
    return StaticFiles(directory=STATIC_DIR)
