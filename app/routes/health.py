from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.deps import SessionDep

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
@router.get("/health")
def health(session: SessionDep, request: Request) -> Health:
    session.execute(text("SELECT 1"))
    problems: list[str] = request.app.state.integrity_problems
    return Health(status="degraded" if problems else "ok", problems=problems)
