from __future__ import annotations

import asyncio
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


class DatabaseCheck:
    """Whether the database answers, asked at most once per DATABASE_CHECK_INTERVAL_S and once at a
    time: the probes that come while it is asked wait for that answer, and share its error. (Each
    asked on its own before: under load, every request in the moment after the interval ran out
    made its own hop to the thread pool, up to 64 at once at 64 connections; /health's p99 there
    was 116-122 ms, 49-56 ms after, BENCHMARKS.md.)"""

    def __init__(self) -> None:
        self._checked_at = float("-inf")
        self._asking: asyncio.Future[None] | None = None

    async def ensure_reachable(self, engine: Engine) -> None:
        """Returns at once within the interval of the last success; raises what the database raised."""
        if time.monotonic() - self._checked_at < DATABASE_CHECK_INTERVAL_S:
            return
        if self._asking is None:
            self._asking = asyncio.ensure_future(run_in_threadpool(_reach_database, engine))
            self._asking.add_done_callback(self._answered)
        # Shielded: a probe that goes away leaves the answer to those still waiting for it.
        await asyncio.shield(self._asking)

    def _answered(self, asking: asyncio.Future[None]) -> None:
        self._asking = None
        if not asking.cancelled() and asking.exception() is None:  # an error is retrieved: no log
            self._checked_at = time.monotonic()


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
    database_check: DatabaseCheck = state.database_check
    await database_check.ensure_reachable(state.engine)
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
