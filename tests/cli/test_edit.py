"""What `trainq edit` sends: only the fields its options give (PATCH), refused before any request
when it would change nothing or says two things at once."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from trainq.cli import app
from trainq.edit import update_fields

NOWHERE = "http://127.0.0.1:9"


def fields(
    *,
    name: str | None = None,
    tags: list[str] | None = None,
    clear_tags: bool = False,
    notes: str | None = None,
    priority: int | None = None,
) -> dict[str, Any]:
    return update_fields(name=name, tags=tags, clear_tags=clear_tags, notes=notes, priority=priority)


def test_only_the_options_given_are_sent() -> None:
    assert fields(name="b") == {"name": "b"}
    assert fields(tags=["x", "y"], priority=5) == {"tags": ["x", "y"], "priority": 5}
    assert fields(notes="lr too high") == {"notes": "lr too high"}
    assert fields(priority=0) == {"priority": 0}


def test_clear_tags_sends_an_empty_list_and_empty_text_clears_a_name_or_notes() -> None:
    assert fields(clear_tags=True) == {"tags": []}
    assert fields(name="", notes="") == {"name": None, "notes": None}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "nothing to change"),
        ({"tags": ["x"], "clear_tags": True}, "not both"),
    ],
)
def test_nothing_to_change_or_tags_with_clear_tags_is_refused(given: dict[str, Any], message: str) -> None:
    with pytest.raises(typer.BadParameter, match=message):
        fields(**given)


def test_the_command_refuses_an_edit_of_nothing_before_asking_the_server() -> None:
    result = CliRunner().invoke(app, ["--url", NOWHERE, "edit", "0123456789abcdef"])
    assert result.exit_code == 2, result.output
    assert "nothing to change" in result.output
