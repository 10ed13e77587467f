"""Running the `trainq` command in-process against a live service."""

from __future__ import annotations

from click.testing import Result
from typer.testing import CliRunner

from tests.e2e.conftest import Service
from trainq.cli import app

ERROR_PREFIX = "trainq: error: "


def trainq(service: Service | str | None, *args: str, api_key: str | None = None) -> Result:
    """`trainq ARGS` with TRAINQ_URL set to a service's URL, to a given URL, or (None) unset;
    TRAINQ_API_KEY is exactly `api_key`, even if unset."""
    url = str(service.http.base_url) if isinstance(service, Service) else service
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
