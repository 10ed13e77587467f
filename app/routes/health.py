from __future__ import annotations

import time
from typing import Literal

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool

from app.deps import KnownQueryRoute

# The database is asked at most this often: a probe sees an outage within it, and /health under
# load costs no hop to the thread pool, whose threads contend with the event loop for the GIL.
DATABASE_CHECK_INTERVAL_S = 1.0


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded: the API serves, but its start-up check found the database behind the "
        "artifacts folder (see problems)."
    )
    problems: list[str] = Field(
        description="What the start-up check found: job folders the database does not know, jobs whose "
        "logs show more attempts than their row. Empty when ok."
    )


# 200 when degraded too: the API still serves, and a restart would find the same. A 503 would make
# Docker restart it in a loop and keep compose's workers (depends_on: service_healthy) from starting.
async def health(request: Request) -> Response:
    state = request.app.state
    if time.monotonic() - getattr(state, "database_checked_at", float("-inf")) >= DATABASE_CHECK_INTERVAL_S:
        await run_in_threadpool(_reach_database, state.engine)
        state.database_checked_at = time.monotonic()
    # Serialised at start-up (app.main), not by FastAPI on each call: load balancers call this the most.
    body: str = state.health_body
    return Response(body, media_type="application/json")


def add_route(app: FastAPI) -> None:
    """GET /health on the app's own router, ahead of the included routers: probes and load
    balancers call it the most, and each included router it passed cost a match (a fifth of its time)."""
    app.router.add_api_route(
        "/health", health, response_model=Health, tags=["health"], route_class_override=KnownQueryRoute
    )


def health_body(problems: list[str]) -> str:
    """The body of every answer: the start-up check's findings do not change while the API runs."""
    return Health(status="degraded" if problems else "ok", problems=problems).model_dump_json()


def _reach_database(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
