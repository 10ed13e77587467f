"""Running the `trainq` command in-process against a live service a whole test module shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from click.testing import Result
from typer.testing import CliRunner

from tests.e2e.conftest import TEST_LEASE_SECONDS, Service
from tests.support.processes import service_env, start_api
from trainq.cli import app

ERROR_PREFIX = "trainq: error: "


@contextmanager
def running_service(state_dir: Path, api_key: str | None = None, **extra_env: str) -> Iterator[Service]:
    """Like the `service` fixture, for module-scoped fixtures; `api_key` goes on the test's own requests."""
    env = service_env(state_dir, TRAINQ_LEASE_SECONDS=TEST_LEASE_SECONDS, **extra_env)
    api, base_url = start_api(state_dir, env, state_dir)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=base_url, timeout=10, headers=headers) as http:
        running = Service(state_dir=state_dir, env=env, http=http)
        try:
            yield running
        finally:
            for worker in running.workers:
                worker.stop()
            api.stop()


def trainq(service: Service | str, *args: str, api_key: str | None = None) -> Result:
    """`trainq ARGS` against a service (or a URL); TRAINQ_API_KEY is exactly `api_key`, even if unset."""
    url = service if isinstance(service, str) else str(service.http.base_url)
    return CliRunner().invoke(app, list(args), env={"TRAINQ_URL": url, "TRAINQ_API_KEY": api_key})


def failed_with(result: Result, *fragments: str) -> str:
    """Exit code 1 with one error line on stderr holding every fragment, and no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
