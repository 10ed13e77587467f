"""Reading Server-Sent Events the way a browser does, for tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    name: str
    data: Any
    id: str | None


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a text/event-stream body; comments (keep-alives) are skipped."""
    name, data, event_id = "message", [], None
    for line in lines:
        if line == "":
            if data:
                yield Event(name, json.loads("\n".join(data)), event_id)
            name, data, event_id = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value
