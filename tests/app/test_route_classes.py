"""What every route of the app keeps to: its query checked (app.deps.KnownQueryRoute), and if it
holds a database session, its response serialised by itself (app/routes/serialized.py)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.deps import KnownQueryRoute, get_session
from app.main import create_app


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(included.routes)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def test_every_sync_route_with_a_session_returns_a_response_it_serialised() -> None:
    routes = list(_api_routes(create_app().router.routes))
    with_session = [
        route
        for route in routes
        if get_session in set(_calls(route.dependant)) and not inspect.iscoroutinefunction(route.endpoint)
    ]
    assert len(with_session) >= 10  # the walk found the routers' routes
    returning_models = [
        f"{sorted(route.methods)} {route.path}" for route in with_session if not _returns_a_response(route)
    ]
    assert returning_models == []


def _returns_a_response(route: APIRoute) -> bool:
    returns = inspect.signature(route.endpoint, eval_str=True).return_annotation
    return isinstance(returns, type) and issubclass(returns, Response)


def test_every_route_checks_its_query_parameters_before_its_dependencies() -> None:
    routes = list(_api_routes(create_app().router.routes))
    assert [
        f"{sorted(route.methods)} {route.path}" for route in routes if not isinstance(route, KnownQueryRoute)
    ] == []
