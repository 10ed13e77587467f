"""The OpenAPI schema's operation ids: short camelCase names a generated client can use as methods."""

from __future__ import annotations

import re

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from app.main import create_app

CAMEL_CASE = re.compile(r"^[a-z]+(?:[A-Z][a-z0-9]*)*$")


def _operation_ids() -> list[str]:
    paths = create_app().openapi()["paths"]
    return [operation["operationId"] for operations in paths.values() for operation in operations.values()]


def test_every_operation_id_served_in_openapi_json_is_short_camel_case_and_unique(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    ids = [operation["operationId"] for operations in paths.values() for operation in operations.values()]
    assert ids and len(ids) == len(set(ids))
    for operation_id in ids:
        assert CAMEL_CASE.match(operation_id), operation_id


def test_the_job_operations_have_their_documented_ids() -> None:
    assert {
        "submitJob",
        "listJobs",
        "getJob",
        "cancelJob",
        "getMetrics",
        "downloadCheckpoint",
        "downloadExport",
    } <= set(_operation_ids())


def test_a_route_added_later_gets_its_function_name_in_camel_case() -> None:
    app = create_app()
    router = APIRouter()

    @router.get("/things/{thing_id}/owners")
    def list_thing_owners() -> list[str]:
        return []

    app.include_router(router)
    operation = app.openapi()["paths"]["/things/{thing_id}/owners"]["get"]
    assert operation["operationId"] == "listThingOwners"


def test_two_routes_with_one_function_name_are_reported() -> None:
    # pyproject's filterwarnings turns this warning into an error in every test that builds the schema.
    app = create_app()
    router = APIRouter()

    @router.get("/elsewhere/{job_id}")
    def get_job() -> None: ...

    app.include_router(router)
    with pytest.warns(UserWarning, match="Duplicate Operation ID getJob"):
        app.openapi()
