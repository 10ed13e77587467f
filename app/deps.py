"""Dependencies shared by the routes, so route signatures read like prose."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from sqlmodel import Session, col, select

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
    """The job that `job_id` names, in full or by a unique prefix (see resolve_job_id)."""
    job = session.get(
        Job, resolve_job_id(session, job_id, owner=None if principal.sees_all else principal.owner)
    )
    assert job is not None
    return job


# Job ids are 32 lowercase hex digits (app.models.new_job_id); a shorter prefix names one too.
MIN_PREFIX_CHARS = 8
MAX_ID_CHARS = 32
MAX_CANDIDATES_SHOWN = 10
_PREFIX = re.compile(f"[0-9a-f]{{{MIN_PREFIX_CHARS},{MAX_ID_CHARS - 1}}}")


def resolve_job_id(session: Session, job_id: str, *, owner: str | None) -> str:
    """The full id of the job that `job_id` names: its id, or a prefix of 8 or more hex digits that
    only one of the jobs `owner` may see starts with (all jobs for None). 404 when it names none
    or belongs to another owner (never 403: that would confirm it exists); 409 listing the
    candidates when the prefix is ambiguous."""
    if len(job_id) > MAX_ID_CHARS or "\x00" in job_id:  # no such id; PostgreSQL refuses NUL in text
        raise HTTPException(status_code=404, detail=f"job {job_id[:64]!r} not found")
    job = session.get(Job, job_id)
    if job is not None and (owner is None or job.owner == owner):
        return job.id
    candidates: list[str] = []
    if job is None and _PREFIX.fullmatch(job_id):
        # An index range on the primary key: ids that start with the prefix sort between it and
        # the prefix followed by 'g', the character after every hex digit.
        query = select(Job.id).where(col(Job.id) >= job_id, col(Job.id) < job_id + "g")
        if owner is not None:
            query = query.where(Job.owner == owner)
        candidates = list(session.exec(query.order_by(col(Job.id)).limit(MAX_CANDIDATES_SHOWN + 1)))
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        shown = ", ".join(candidates[:MAX_CANDIDATES_SHOWN])
        more = " and more" if len(candidates) > MAX_CANDIDATES_SHOWN else ""
        raise HTTPException(
            status_code=409,
            detail=f"job id prefix {job_id!r} is ambiguous: {shown}{more} start with it; give more characters",
        )
    raise HTTPException(status_code=404, detail=f"job {job_id[:64]!r} not found")


def get_job_id(job_id: str, session: SessionDep, principal: PrincipalDep) -> str:
    return resolve_job_id(session, job_id, owner=None if principal.sees_all else principal.owner)


JobDep = Annotated[Job, Depends(get_job)]
# The full id of the job that the path's {job_id} names, for routes that pass it on to app.queue.
JobIdDep = Annotated[str, Depends(get_job_id)]


class KnownQueryRoute(APIRoute):
    """A route that answers a query parameter it does not take with a 422 naming it and those
    it takes: a misspelt filter (`?stauts=running`) must not silently list everything. Every API
    router's route class; the dashboard's page (outside the API schema) opens whatever a link
    appends (`?utm_source=…`). Checked before the route's dependencies are solved, from the set
    of names read once here: as an app-wide dependency, it cost /health a third of its time."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not self.include_in_schema:
            return handler
        allowed = frozenset(_declared_query(self.dependant))
        takes = ", ".join(sorted(allowed)) or "none"

        async def checked(request: Request) -> Response:
            if request.scope["query_string"] and (unknown := set(request.query_params) - allowed):
                raise RequestValidationError(
                    [
                        {
                            "loc": ("query", name),
                            "msg": f"unknown query parameter {name[:64]!r}; this route takes: {takes}",
                            "type": "extra_forbidden",
                        }
                        for name in sorted(unknown)
                    ]
                )
            return await handler(request)

        return checked


def _declared_query(dependant: Dependant) -> set[str]:
    """The query parameters a route declares, its dependencies' too."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _declared_query(dependency)
    return names
