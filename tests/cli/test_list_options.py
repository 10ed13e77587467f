"""`trainq list` refuses a time or an order it cannot send before it asks the server anything."""

from __future__ import annotations

from typer.testing import CliRunner

from trainq.choices import SORTS
from trainq.cli import app

# Nothing listens there: a usage error must come before any request.
NOWHERE = "http://127.0.0.1:9"


def test_a_since_or_until_that_is_not_an_iso_time_is_a_usage_error_with_an_example() -> None:
    for option in ("--since", "--until"):
        result = CliRunner().invoke(app, ["--url", NOWHERE, "list", option, "yesterday"])
        assert result.exit_code == 2, result.output
        assert f"Invalid value for '{option}'" in result.output
        assert "'yesterday' is not an ISO 8601 time, e.g. 2024-05-01" in result.output


def test_an_unknown_sort_is_a_usage_error_listing_the_sorts() -> None:
    result = CliRunner().invoke(app, ["--url", NOWHERE, "list", "--sort", "accuracy"])
    assert result.exit_code == 2, result.output
    assert all(repr(sort) in result.output for sort in SORTS)


def test_a_descending_sort_is_taken_as_a_value_not_an_option() -> None:
    result = CliRunner().invoke(app, ["--url", NOWHERE, "list", "--sort", "-best_val_accuracy"])
    # It got as far as asking the server: the order was accepted.
    assert result.exit_code == 1, result.output
    assert "not reachable" in result.output
