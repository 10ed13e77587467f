"""Training logs on disk: one file per attempt under TRAINQ_ARTIFACTS_DIR/<job id>/logs/.

The worker's training process writes them (capped at TRAINQ_MAX_LOG_BYTES per
attempt); the API reads them for GET /jobs/{id}/logs and the event stream.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from app.artifacts import LOGS_DIR_NAME

_ATTEMPT_FILE = re.compile(r"^attempt-(\d+)\.log$")


def attempt_logs(job_dir: Path) -> list[tuple[int, Path]]:
    """(attempt, file) for every attempt that wrote a log, in attempt order."""
    logs_dir = job_dir / LOGS_DIR_NAME
    if not logs_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in logs_dir.iterdir() if (m := _ATTEMPT_FILE.match(p.name))]
    return sorted(found)


def read_log(job_dir: Path, *, attempt: int | None = None, tail: int | None = None) -> tuple[str, int]:
    """The log of one attempt or of all of them in order (only the last `tail` lines if given),
    and the bytes read: with every attempt, where a LogFollower would go on from."""
    files = [p for n, p in attempt_logs(job_dir) if attempt is None or n == attempt]
    contents = [p.read_bytes() for p in files]
    size = sum(len(data) for data in contents)
    texts = [data.decode("utf-8", errors="replace") for data in contents]
    if tail is None:
        return "".join(texts), size
    last: deque[str] = deque(maxlen=tail)
    for text in texts:
        last.extend(text.splitlines(keepends=True))
    return "".join(last), size


@dataclass(frozen=True)
class LogChunk:
    attempt: int
    lines: list[str]
    end_offset: int  # where the follower stands once these lines are delivered


class LogFollower:
    """Reads the lines added to a job's logs since a byte offset into all its attempts' logs
    laid end to end (earlier attempts' files no longer grow once a later attempt starts)."""

    def __init__(self, job_dir: Path, offset: int | None = None, *, max_lines: int = 500) -> None:
        self._job_dir = job_dir
        self._max_lines = max_lines
        self.offset = sum(p.stat().st_size for _, p in attempt_logs(job_dir)) if offset is None else offset

    def read_new(self, *, partial: bool = False) -> list[LogChunk]:
        """Complete new lines (and a last unterminated one if `partial`), in chunks of at most
        max_lines, advancing the offset."""
        chunks: list[LogChunk] = []
        start = 0
        for attempt, path in attempt_logs(self._job_dir):
            size = path.stat().st_size
            if self.offset < start + size:
                with path.open("rb") as file:
                    file.seek(self.offset - start)
                    data = file.read(start + size - self.offset)
                if not partial:
                    data = data[: data.rfind(b"\n") + 1]
                lines = data.splitlines(keepends=True)
                for first in range(0, len(lines), self._max_lines):
                    group = lines[first : first + self._max_lines]
                    self.offset += sum(len(line) for line in group)
                    text = [line.decode("utf-8", errors="replace").rstrip("\r\n") for line in group]
                    chunks.append(LogChunk(attempt, text, self.offset))
                if self.offset < start + size:
                    break  # an unfinished line: the next attempt's lines come after it
            start += size
        return chunks
