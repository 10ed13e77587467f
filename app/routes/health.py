from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import Engine, text

router = APIRouter(tags=["health"])


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
# No dependencies, one hop to the thread pool: probes and load balancers call it often.
@router.get("/health")
def health(request: Request) -> Health:
    engine: Engine = request.app.state.engine
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    problems: list[str] = request.app.state.integrity_problems
    return Health(status="degraded" if problems else "ok", problems=problems)
