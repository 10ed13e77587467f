"""Schemathesis against the live OpenAPI schema of a real uvicorn server, with and without a key.

Bounded (a few dozen examples per operation) so the suite stays within minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.schemas import APIOperation

# Cross-field rules (a step schedule needs step_size, ...) cannot be written in JSON Schema,
# so a schema-valid body may rightly get 422: that check does not apply.
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.processes import service_env, start_api

KEY = "fuzzer-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
EXAMPLES_PER_OPERATION = 100


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state_dir: Path = tmp_path_factory.mktemp("fuzz")
    api, base_url = start_api(state_dir, service_env(state_dir, TRAINQ_API_KEYS=f"fuzzer:{KEY}"), state_dir)
    # One real job, so that generated ids sometimes hit an existing one.
    httpx.post(f"{base_url}/jobs", json={"name": "seed"}, headers=AUTH).raise_for_status()
    yield base_url
    api.stop()
    assert "Traceback" not in api.log(), api.log()[-5000:]


@pytest.fixture(scope="module")
def operations(live_api: str) -> list[APIOperation]:
    schema = schemathesis.openapi.from_url(f"{live_api}/openapi.json", headers=AUTH)
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 7
    return found


fuzz_settings = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def fuzz_each(operations: list[APIOperation], check: Callable[[schemathesis.Case], None]) -> None:
    for operation in operations:
        fuzz_settings(given(case=operation.as_strategy())(check))()


def test_with_a_key_no_request_breaks_the_api_and_every_response_matches_the_schema(
    live_api: str, operations: list[APIOperation]
) -> None:
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=live_api, headers=AUTH, excluded_checks=[positive_data_acceptance])

    fuzz_each(operations, check)


def test_without_a_key_every_request_but_health_is_turned_away(
    live_api: str, operations: list[APIOperation]
) -> None:
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=live_api)
        if case.path == "/health":
            assert response.status_code == 200
        else:
            assert response.status_code == 401, (case.method, case.formatted_path, response.text)
            assert response.headers["www-authenticate"][0].startswith("Bearer")

    fuzz_each(operations, check)
