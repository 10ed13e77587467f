"""The job a `trainq submit` asks for: a JSON/YAML file, then `--set key=value`, then the named flags."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The top-level keys of a POST /jobs body; a file with none of them holds only hyperparameters.
BODY_KEYS = frozenset({"name", "hyperparameters", "max_attempts", "max_runtime_seconds"})


class JobFileError(ValueError):
    """A job file or a --set that cannot be used; the message says what to change."""


@dataclass
class JobRequest:
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    max_attempts: int | None = None
    max_runtime_seconds: float | None = None


def read_job_file(path: Path) -> JobRequest:
    """A POST /jobs body, or just its hyperparameters, as JSON (.json) or YAML (anything else)."""
    try:
        text = path.read_text()
        loaded = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        # YAML knows dates and sets that JSON does not; as strings the server can say what is wrong.
        loaded = json.loads(json.dumps(loaded, default=str))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise JobFileError(f"cannot read {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise JobFileError(f"{path} must hold a mapping (a job body or its hyperparameters)")
    if not BODY_KEYS.intersection(loaded):
        return JobRequest(hyperparameters=loaded)
    unknown = sorted(set(loaded) - BODY_KEYS)
    if unknown:
        raise JobFileError(
            f"{path}: unknown keys {', '.join(map(str, unknown))}; a job body has "
            f"{', '.join(sorted(BODY_KEYS))} (hyperparameters go under 'hyperparameters')"
        )
    hyperparameters = loaded.get("hyperparameters") or {}
    if not isinstance(hyperparameters, dict):
        raise JobFileError(f"{path}: 'hyperparameters' must be a mapping")
    return JobRequest(
        hyperparameters=hyperparameters,
        name=loaded.get("name"),
        max_attempts=loaded.get("max_attempts"),
        max_runtime_seconds=loaded.get("max_runtime_seconds"),
    )


def parse_assignments(assignments: Iterable[str]) -> dict[str, Any]:
    """`key=value` pairs; values are read as YAML scalars, so 0.5, true and null get their types."""
    parsed: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise JobFileError(f"--set {assignment!r}: write it as key=value, e.g. --set momentum=0.8")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError as exc:
            raise JobFileError(f"--set {assignment!r}: the value is not readable ({exc})") from exc
        # Hyperparameters are scalars; anything else YAML makes of the text (a date, a list) is sent as written.
        parsed[key.strip()] = value if isinstance(value, str | int | float | bool | None) else raw
    return parsed


def build_request(
    base: JobRequest,
    *,
    assignments: Mapping[str, Any],
    flags: Mapping[str, Any],
    name: str | None,
    max_attempts: int | None,
    max_runtime_seconds: float | None,
) -> JobRequest:
    """What the command line says wins over the file; flags left unset (None) change nothing."""
    hyperparameters = {**base.hyperparameters, **assignments}
    hyperparameters.update({key: value for key, value in flags.items() if value is not None})
    return JobRequest(
        hyperparameters=hyperparameters,
        name=name if name is not None else base.name,
        max_attempts=max_attempts if max_attempts is not None else base.max_attempts,
        max_runtime_seconds=max_runtime_seconds
        if max_runtime_seconds is not None
        else base.max_runtime_seconds,
    )
