"""The job a `trainq submit` asks for: a JSON/YAML file, then `--set key=value`, then the named flags.

`resources` (devices, labels) travels as the file wrote it: the server validates it, and its 422
names the field. Here only its shape is checked where the command line has to add to it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The top-level keys of a POST /jobs body; a file with none of them holds only hyperparameters.
BODY_KEYS = frozenset(
    {"name", "hyperparameters", "max_attempts", "max_runtime_seconds", "resources", "priority", "tags"}
)


class JobFileError(ValueError):
    """A job file or a --set that cannot be used; the message says what to change."""


@dataclass
class JobRequest:
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    max_attempts: int | None = None
    max_runtime_seconds: float | None = None
    # None: not sent, so the server's default (one device, no labels) applies.
    resources: dict[str, Any] | None = None
    priority: int | None = None  # None: not sent (the server's default, 0)
    tags: list[str] | None = None  # None: not sent (no tags)


def read_document(path: Path) -> Any:
    """What a JSON (.json) or YAML (anything else) file holds, as JSON values."""
    try:
        text = path.read_text()
        loaded = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        # YAML knows dates and sets that JSON does not; as strings the server can say what is wrong.
        return json.loads(json.dumps(loaded, default=str))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise JobFileError(f"cannot read {path}: {exc}") from exc


def read_job_file(path: Path) -> JobRequest:
    """A POST /jobs body, or just its hyperparameters, as JSON (.json) or YAML (anything else)."""
    loaded = read_document(path)
    if not isinstance(loaded, dict):
        raise JobFileError(f"{path} must hold a mapping (a job body or its hyperparameters)")
    if not BODY_KEYS.intersection(loaded):
        return JobRequest(hyperparameters=loaded)
    unknown = sorted(set(loaded) - BODY_KEYS)
    if unknown:
        raise JobFileError(
            f"{path}: unknown keys {', '.join(map(str, unknown))}{_did_you_mean(unknown)}; a job body has "
            f"{', '.join(sorted(BODY_KEYS))} (hyperparameters go under 'hyperparameters')"
        )
    hyperparameters = loaded.get("hyperparameters") or {}
    if not isinstance(hyperparameters, dict):
        raise JobFileError(f"{path}: 'hyperparameters' must be a mapping")
    resources = loaded.get("resources")
    if resources is not None and not isinstance(resources, dict):
        raise JobFileError(f"{path}: 'resources' must be a mapping, e.g. {{devices: 2, labels: [a100]}}")
    tags = loaded.get("tags")
    if tags is not None and not isinstance(tags, list):
        raise JobFileError(f"{path}: 'tags' must be a list, e.g. [baseline, digits]")
    return JobRequest(
        hyperparameters=hyperparameters,
        name=loaded.get("name"),
        max_attempts=loaded.get("max_attempts"),
        max_runtime_seconds=loaded.get("max_runtime_seconds"),
        resources=resources,
        priority=loaded.get("priority"),
        tags=tags,
    )


def _did_you_mean(unknown: Sequence[object]) -> str:
    """The hint for unknown keys that look like misspelled body keys: " (did you mean max_attempts?)";
    with several unknown keys each guess says which it is for ("max_attempts for max_attempt")."""
    guesses = [
        match[0] if len(unknown) == 1 else f"{match[0]} for {key}"
        for key in unknown
        if (match := difflib.get_close_matches(str(key), sorted(BODY_KEYS), n=1, cutoff=0.6))
    ]
    return f" (did you mean {', '.join(guesses)}?)" if guesses else ""


def request_of_job(job: Mapping[str, Any]) -> JobRequest:
    """A job as GET /jobs/{id} shows it, as a request that queues it again (`trainq submit --from`)."""
    return JobRequest(
        hyperparameters=dict(job["hyperparameters"]),
        name=job.get("name"),
        max_attempts=job.get("max_attempts"),
        max_runtime_seconds=job.get("max_runtime_seconds"),
        resources=dict(job["resources"]) if job.get("resources") is not None else None,
        priority=job.get("priority"),
        tags=list(job["tags"]) if job.get("tags") else None,
    )


def overlaid(base: JobRequest, over: JobRequest) -> JobRequest:
    """`base` with what `over` sets: its hyperparameters added, its other fields where not None."""
    return JobRequest(
        hyperparameters={**base.hyperparameters, **over.hyperparameters},
        name=over.name if over.name is not None else base.name,
        max_attempts=over.max_attempts if over.max_attempts is not None else base.max_attempts,
        max_runtime_seconds=over.max_runtime_seconds
        if over.max_runtime_seconds is not None
        else base.max_runtime_seconds,
        resources=over.resources if over.resources is not None else base.resources,
        priority=over.priority if over.priority is not None else base.priority,
        tags=over.tags if over.tags is not None else base.tags,
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
    devices: int | None,
    labels: Sequence[str],
    priority: int | None = None,
    tags: Sequence[str] = (),
) -> JobRequest:
    """What the command line says wins over the file; flags left unset (None) change nothing.
    `devices` replaces the file's count; `labels` and `tags` are added to the file's."""
    hyperparameters = {**base.hyperparameters, **assignments}
    hyperparameters.update({key: value for key, value in flags.items() if value is not None})
    return JobRequest(
        hyperparameters=hyperparameters,
        name=name if name is not None else base.name,
        max_attempts=max_attempts if max_attempts is not None else base.max_attempts,
        max_runtime_seconds=max_runtime_seconds
        if max_runtime_seconds is not None
        else base.max_runtime_seconds,
        resources=_resources(base.resources, devices=devices, labels=labels),
        priority=priority if priority is not None else base.priority,
        tags=_added(base.tags, tags) if tags else base.tags,
    )


def _added(listed: Sequence[str] | None, more: Sequence[str]) -> list[str]:
    """`listed` and then each of `more` it lacks, each once, in order."""
    return list(dict.fromkeys([*(listed or []), *more]))


def _resources(
    base: Mapping[str, Any] | None, *, devices: int | None, labels: Sequence[str]
) -> dict[str, Any] | None:
    if base is None and devices is None and not labels:
        return None
    resources = dict(base or {})
    if devices is not None:
        resources["devices"] = devices
    if labels:
        from_file = resources.get("labels", [])
        if not isinstance(from_file, list):
            raise JobFileError("'resources.labels' in the job file must be a list for --label to add to")
        # Each label once, the file's first (the server sorts them).
        resources["labels"] = _added(from_file, labels)
    return resources
