"""README documents what the code accepts; these keep the two from drifting apart."""

from __future__ import annotations

import re
from pathlib import Path

from app.contract import FailureReason
from app.hyperparameters import Hyperparameters
from app.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def table_names(heading: str) -> set[str]:
    section = README.split(heading, 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-zA-Z_]+)` \|", section, flags=re.MULTILINE))


def test_every_hyperparameter_is_documented_in_the_readme_table() -> None:
    assert table_names("## Hyperparameters") == set(Hyperparameters.model_fields)


def test_every_setting_is_documented_in_the_readme() -> None:
    documented = {name.removeprefix("TRAINQ_").lower() for name in table_names("## Settings")}
    assert documented == set(Settings.model_fields)


def test_every_failure_reason_is_documented_in_the_readme() -> None:
    listed = README.split("`error.reason` is one of", 1)[1].split("with a message", 1)[0]
    assert set(re.findall(r"`([a-z_]+)`", listed)) == set(FailureReason)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "make test" in README
    assert "make run" in README
    commands = [line for line in ci.splitlines() if line and not line.startswith((" ", "#"))]
    # README's test command, then the compose check, each run as a command of its own.
    assert "make test" in commands
    assert commands[-1] == "deploy/compose-check"
    assert commands.index("make test") < commands.index("deploy/compose-check")
