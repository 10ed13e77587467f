"""How the `trainq` command shows jobs, metric rows and checkpoints to a person."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from trainq.job_events import FINAL_STATUSES as FINAL_STATUSES  # defined once, used here too

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
UNBOUNDED_WIDTH = 100_000


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


SHORT_ID_CHARS = 12  # two jobs share a 12-digit prefix about once in 2**48 pairs


def jobs_table(jobs: Iterable[Job], now: datetime, *, wide: bool = False) -> Table:
    """`wide`: ids and names in full (print it on a console as wide as the table, see fit_width)."""
    table = Table(box=None, pad_edge=False)
    # Every command (and API path) takes a unique prefix of an id, so the first SHORT_ID_CHARS
    # serve, as docker ps shows them; `wide` shows ids whole, for scripts.
    table.add_column("ID", no_wrap=True, min_width=32 if wide else SHORT_ID_CHARS)
    # The one column that gives way on a narrow terminal (each name stays one line, cut with an ellipsis).
    table.add_column("NAME", max_width=None if wide else 24, no_wrap=wide)
    table.add_column("STATUS", no_wrap=True, min_width=9)
    table.add_column("PROGRESS", justify="right", no_wrap=True, min_width=8)
    table.add_column("EPOCH", justify="right", no_wrap=True, min_width=5)
    table.add_column("BEST", justify="right", no_wrap=True, min_width=6)
    jobs = list(jobs)
    # Only when some job has tags, so a list without any keeps its width for the names; next to
    # AGE, so the columns before it stay where scripts and eyes expect them.
    tagged = any(job.get("tags") for job in jobs)
    if tagged:
        table.add_column("TAGS", max_width=None if wide else 16, no_wrap=wide)
    table.add_column("AGE", justify="right", no_wrap=True)
    for job in jobs:
        cells: list[str | Text] = [
            job["id"] if wide else job["id"][:SHORT_ID_CHARS],
            Text(job["name"] or "-", no_wrap=True, overflow="ellipsis"),
            status_text(job["status"]),
            f"{job['progress']:.0%}",
            epochs_of(job),
            best_accuracy_text(job),
        ]
        if tagged:
            cells.append(Text(tags_text(job) or "-", no_wrap=True, overflow="ellipsis"))
        table.add_row(*cells, age(job["created_at"], now))
    return table


def tags_text(job: Job) -> str | None:
    """ "baseline,digits": a job's tags, compact (a tag never holds a comma)."""
    return ",".join(job.get("tags") or []) or None


def best_accuracy_text(job: Job) -> str:
    """The best epoch's validation accuracy, "-" until there is one (or a server that does not say)."""
    best = job.get("best_val_accuracy")
    return "-" if best is None else f"{best:.1%}"


def fit_width(console: Console, renderable: RenderableType) -> None:
    """Widen `console` to what `renderable` needs, so nothing in it is cut (`--wide`)."""
    # Measured as if the console were unbounded: a measurement never exceeds the width it is given.
    unbounded = console.options.update_width(UNBOUNDED_WIDTH)
    needed = Measurement.get(console, unbounded, renderable).maximum
    console.width = max(console.width, needed)


def evaluation_table(metrics: Job, split: str) -> Table:
    """Per-class precision, recall, F1 and support of the best epoch on one split."""
    table = Table(box=None, pad_edge=False, title=f"{split} (epoch {metrics['epoch']})", title_justify="left")
    for label in ("CLASS", "PRECISION", "RECALL", "F1", "SUPPORT"):
        table.add_column(label, justify="left" if label == "CLASS" else "right")
    for row in metrics["per_class"]:
        table.add_row(
            Text(row["class"]),
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
        )
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
