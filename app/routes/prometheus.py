"""GET /metrics: the Prometheus text format, for admin and the `metrics` owner only (or anonymous mode)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from app.deps import KnownQueryRoute, PrincipalDep
from app.schemas import ErrorMessage
from app.security import ADMIN_OWNER, METRICS_OWNER

router = APIRouter(route_class=KnownQueryRoute, tags=["operations"])

FORBIDDEN_DETAIL = (
    f"/metrics counts every owner's jobs, so only the owners {ADMIN_OWNER!r} and {METRICS_OWNER!r} may read "
    f"it: give Prometheus a key of owner {METRICS_OWNER!r} (add '{METRICS_OWNER}:<key>' to TRAINQ_API_KEYS)"
)


@router.get(
    "/metrics",
    # A bare Response class: only the 200 is text, errors stay documented as JSON.
    response_class=Response,
    responses={
        200: {
            "description": "Every trainq_ series.",
            "content": {CONTENT_TYPE_PLAIN_0_0_4: {"schema": {"type": "string"}}},
        },
        403: {
            "model": ErrorMessage,
            "description": f"The key's owner is neither {ADMIN_OWNER!r} nor {METRICS_OWNER!r}.",
        },
    },
)
def prometheus_metrics(request: Request, principal: PrincipalDep) -> Response:
    # A plain def runs in the thread pool: the scrape's queries stay off the event loop.
    if not principal.reads_metrics:
        raise HTTPException(status_code=403, detail=FORBIDDEN_DETAIL)
    registry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
