"""Short, stable OpenAPI operation ids: the route function's name in camelCase (`submit_job` ->
`submitJob`), instead of FastAPI's `submit_job_jobs_post`, so generated clients get readable names.

Two routes with one function name would share an id: FastAPI warns ("Duplicate Operation ID"),
and the tests, which turn that warning into an error, generate the whole schema
(tests/app/test_openapi.py). Not checked at start-up: generating the schema takes 0.3 s per app.
"""

from __future__ import annotations

from fastapi.routing import APIRoute


def operation_id(route: APIRoute) -> str:
    first, *rest = route.name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)
