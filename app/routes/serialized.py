"""Responses that a sync route serialises itself, in its own thread."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic_core
from fastapi import Response


def serialized(value: Any, *, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """`value` (a model, or a list of them) as the JSON FastAPI would send for it.

    FastAPI serialises a sync route's return value in the thread pool after the route returns,
    while the route's dependencies, its session and the pooled connection it holds, are still
    open. Under load every connection could then be held by requests waiting for a thread while
    every thread waited for a connection: POST /jobs at 64 clients stopped answering for 30 s, then
    answered 500. A route with a session returns this instead (a test keeps it so)."""
    return Response(
        pydantic_core.to_json(value), status_code=status_code, media_type="application/json", headers=headers
    )
