"""`--help` of every command fits an 80-column terminal and lists the allowed values of choices."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from trainq.choices import CHOICES, SORTS, STATUSES
from trainq.cli import app

WIDTH = 80


def _command_paths() -> list[list[str]]:
    """Every command and subcommand, as the words that name it."""
    paths: list[list[str]] = [[]]

    # Typer's groups are its own click's, so a group is what has subcommands.
    def walk(group: Any, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            paths.append([*prefix, name])
            if hasattr(command, "commands"):
                walk(command, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


def _help(*words: str) -> str:
    result = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": str(WIDTH)}, terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("words", _command_paths(), ids=lambda words: " ".join(words) or "trainq")
def test_help_fits_80_columns_and_cuts_nothing(words: list[str]) -> None:
    text = _help(*words)
    too_long = [line for line in text.splitlines() if len(line) > WIDTH]
    assert too_long == []
    # Rich's tables cut what does not fit with an ellipsis; nothing may be lost.
    assert "…" not in text


def test_submit_help_lists_every_allowed_value_of_its_choices() -> None:
    text = " ".join(_help("submit").split())
    for field, choices in CHOICES.items():
        assert f"--{field.replace('_', '-')}" in text
        for choice in choices:
            assert choice in text, (field, choice)
    assert "--learning-rate, --lr" in text


def test_list_help_lists_every_status() -> None:
    text = " ".join(_help("list").split())
    assert all(status in text for status in STATUSES)
    assert "--wide" in text


def test_list_help_lists_its_filters_and_every_sort() -> None:
    text = " ".join(_help("list").split())
    for option in ("--tag", "--name", "--model", "--dataset", "--sweep", "--since", "--until", "--sort"):
        assert option in text
    assert all(sort in text for sort in SORTS)


def test_edit_help_says_that_tags_replace_the_jobs_tags() -> None:
    text = " ".join(_help("edit").split())
    for option in ("--name", "--tag", "--clear-tags", "--notes", "--priority", "--json"):
        assert option in text
    assert "replace all of the job's tags" in text


def test_the_list_of_commands_cuts_no_summary() -> None:
    commands = _help().split("Commands:", 1)[1].splitlines()
    assert [line for line in commands if line.rstrip().endswith("...")] == []
