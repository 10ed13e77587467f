"""GET /workers: the live workers, for the owner `admin` only (or anonymous mode on this machine).

A worker is live while its last heartbeat (every quarter of its TRAINQ_LEASE_SECONDS) is younger
than two of its leases, judged by the database's clock; a worker that stops cleanly leaves the
list at once, one that was killed once two leases have passed.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from app.deps import EngineDep, KnownQueryRoute, PrincipalDep
from app.queue import workers
from app.schemas import ErrorMessage, WorkerPublic
from app.security import ADMIN_OWNER

router = APIRouter(route_class=KnownQueryRoute, tags=["workers"])

FORBIDDEN_DETAIL = (
    f"/workers shows every host that runs jobs, so only the owner {ADMIN_OWNER!r} may read it: "
    f"use a key of owner {ADMIN_OWNER!r}"
)


@router.get(
    "/workers",
    responses={403: {"model": ErrorMessage, "description": f"The key's owner is not {ADMIN_OWNER!r}."}},
)
def list_workers(engine: EngineDep, principal: PrincipalDep) -> list[WorkerPublic]:
    """The live workers, oldest first: their devices, memory and labels, when each started and
    last sent a heartbeat (the database's clock), how many live workers share its host, and the
    job it runs (null when idle)."""
    if not principal.sees_all:
        raise HTTPException(status_code=403, detail=FORBIDDEN_DETAIL)
    return workers.list_live(engine)
