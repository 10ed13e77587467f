"""How the `trainq` command shows jobs, metric rows and checkpoints to a person."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
STATUS_STYLES = {
    "queued": "dim",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
}
# Fixed widths, so rows printed one at a time (as `watch` does) line up under one header.
EPOCH_COLUMNS = (
    ("epoch", 5),
    ("train loss", 10),
    ("train acc", 9),
    ("val loss", 9),
    ("val acc", 8),
    ("lr", 9),
    ("seconds", 8),
)

Job = Mapping[str, Any]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def age(created_at: str, now: datetime) -> str:
    seconds = max(0, int((now - parse_time(created_at)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def epochs_of(job: Job) -> str:
    return f"{job['current_epoch']}/{job['hyperparameters'].get('epochs', '?')}"


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def jobs_table(jobs: Iterable[Job], now: datetime) -> Table:
    table = Table(box=None, pad_edge=False)
    # The id is what every other command takes, so it is never cut.
    table.add_column("ID", no_wrap=True, min_width=32)
    # The one column that gives way on a narrow terminal (each name stays one line, cut with an ellipsis).
    table.add_column("NAME", max_width=24)
    table.add_column("STATUS", no_wrap=True, min_width=9)
    table.add_column("PROGRESS", justify="right", no_wrap=True, min_width=8)
    table.add_column("EPOCH", justify="right", no_wrap=True, min_width=5)
    table.add_column("AGE", justify="right", no_wrap=True)
    for job in jobs:
        table.add_row(
            job["id"],
            Text(job["name"] or "-", no_wrap=True, overflow="ellipsis"),
            status_text(job["status"]),
            f"{job['progress']:.0%}",
            epochs_of(job),
            age(job["created_at"], now),
        )
    return table


def job_details(job: Job) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    error = job.get("error")
    rows: list[tuple[str, str | Text]] = [
        ("id", job["id"]),
        ("name", Text(job["name"] or "-")),
        ("owner", Text(job["owner"])),
        ("status", status_text(job["status"])),
        ("error", Text(f"{error['reason']}: {error['message']}") if error else "-"),
        ("progress", f"{job['progress']:.0%} (epoch {epochs_of(job)})"),
        ("attempts", f"{job['attempts']} of {job['max_attempts']}"),
        ("runtime", f"{job['runtime_seconds']:.1f}s" + _limit(job.get("max_runtime_seconds"))),
        ("device", f"{job.get('device') or '-'} ({job.get('precision') or '-'})"),
        ("created", job["created_at"]),
        ("started", job.get("started_at") or "-"),
        ("finished", job.get("finished_at") or "-"),
        ("hyperparameters", Text(" ".join(f"{k}={v}" for k, v in sorted(job["hyperparameters"].items())))),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


def metrics_table(rows: Iterable[Job]) -> Table:
    table = Table(box=None, pad_edge=False, title="epochs", title_justify="left")
    for label, _width in EPOCH_COLUMNS:
        table.add_column(label.upper(), justify="right")
    table.add_column("ATTEMPT", justify="right")
    for row in rows:
        table.add_row(*epoch_cells(row), str(row["attempt"]))
    return table


def checkpoints_table(entries: Iterable[Job]) -> Table:
    table = Table(box=None, pad_edge=False, title="checkpoints", title_justify="left")
    for label in ("EPOCH", "BEST", "SIZE", "SHA256"):
        table.add_column(label, no_wrap=True, min_width=len(label))
    for entry in entries:
        table.add_row(
            str(entry["epoch"]),
            "best" if entry["is_best"] else "",
            human_bytes(int(entry["size_bytes"])),
            entry["sha256"][:16],
        )
    return table


def epoch_cells(row: Job) -> list[str]:
    return [
        str(row["epoch"]),
        f"{row['train_loss']:.4f}",
        f"{row['train_accuracy']:.1%}",
        f"{row['val_loss']:.4f}",
        f"{row['val_accuracy']:.1%}",
        f"{row['learning_rate']:.2e}",
        f"{row['duration_seconds']:.1f}",
    ]


def epoch_header() -> str:
    return "  ".join(label.rjust(width) for label, width in EPOCH_COLUMNS)


def epoch_line(row: Job) -> str:
    return "  ".join(
        cell.rjust(width) for cell, (_label, width) in zip(epoch_cells(row), EPOCH_COLUMNS, strict=True)
    )


def human_bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _limit(max_runtime_seconds: float | None) -> str:
    return f" of {max_runtime_seconds:.0f}s allowed" if max_runtime_seconds else ""
