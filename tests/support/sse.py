"""Reading Server-Sent Events the way a browser does, for tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from trainq.job_events import parse_sse


@dataclass(frozen=True)
class Event:
    name: str
    data: Any
    id: str | None


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a text/event-stream body, their data decoded from JSON; comments
    (keep-alives) are skipped. The client's parser (trainq.job_events.parse_sse) reads them."""
    for raw in parse_sse(lines):
        yield Event(raw.name, json.loads(raw.data), raw.id)
