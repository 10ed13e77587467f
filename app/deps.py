"""Dependencies shared by the routes, so route signatures read like prose."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Engine
from sqlmodel import Session

from app.db import read_session
from app.models import Job
from app.security import Principal
from app.settings import Settings

# Dependencies that only read request state are `async def`: a plain `def` would cost a
# hop to the thread pool for each of them, on every request.


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with read_session(engine) as session:
        yield session


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
# Closed when the route function returns, before the response is sent: a long response
# (an event stream, a large download) must not hold one of the pool's connections.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_job(job_id: str, session: SessionDep, principal: PrincipalDep) -> Job:
    return find_job(session, job_id, principal)


def find_job(session: Session, job_id: str, principal: Principal) -> Job:
    """The job, or 404 when it does not exist or belongs to another owner (never 403:
    that would confirm it exists)."""
    job = session.get(Job, job_id)
    if job is None or not (principal.sees_all or job.owner == principal.owner):
        raise HTTPException(status_code=404, detail=f"job {job_id[:64]!r} not found")
    return job


JobDep = Annotated[Job, Depends(get_job)]
