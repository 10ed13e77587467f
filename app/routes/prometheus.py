"""GET /metrics: the Prometheus text format, behind the API key like every other path."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    # A bare Response class: only the 200 is text, errors stay documented as JSON.
    response_class=Response,
    responses={
        200: {
            "description": "Every trainq_ series.",
            "content": {CONTENT_TYPE_PLAIN_0_0_4: {"schema": {"type": "string"}}},
        }
    },
)
def prometheus_metrics(request: Request) -> Response:
    # A plain def runs in the thread pool: the scrape's queries stay off the event loop.
    registry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
