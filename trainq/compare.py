"""`trainq compare ID ID...`: jobs side by side, one column each, what differs highlighted and first.

The summary (name, status, best accuracy, best epoch, stop reason, duration) is always shown on top;
below it the hyperparameters whose values differ, highlighted, and with --all the identical ones after.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainq.client import Client

DIFFERS_STYLE = "bold yellow"
DIFFERS_MARK = "*"
SHORT_ID_CHARS = 8

Job = Mapping[str, Any]


def _best_accuracy(job: Job) -> Any:
    # Older servers do not list best_val_accuracy; the job's epochs say it too.
    if job.get("best_val_accuracy") is not None:
        return job["best_val_accuracy"]
    return max((row["val_accuracy"] for row in job.get("metrics") or []), default=None)


def _duration(job: Job) -> Any:
    return job.get("duration_seconds", job.get("runtime_seconds"))


# The summary rows: a label and how to read it from a job (GET /jobs/{id}).
SUMMARY: tuple[tuple[str, Callable[[Job], Any]], ...] = (
    ("name", lambda job: job.get("name")),
    ("status", lambda job: job.get("status")),
    ("best_val_accuracy", _best_accuracy),
    ("best_epoch", lambda job: job.get("best_epoch")),
    ("stop_reason", lambda job: job.get("stop_reason")),
    ("duration", _duration),
)


@dataclass(frozen=True)
class Row:
    label: str
    values: tuple[Any, ...]

    @property
    def differs(self) -> bool:
        return any(value != self.values[0] for value in self.values[1:])


def comparison_rows(jobs: Sequence[Job], *, show_all: bool = False) -> list[Row]:
    """The summary rows, then the differing hyperparameters, then (show_all) the identical ones."""
    summary = [Row(label, tuple(read(job) for job in jobs)) for label, read in SUMMARY]
    names = sorted({name for job in jobs for name in job["hyperparameters"]})
    hyperparameters = [Row(name, tuple(job["hyperparameters"].get(name) for job in jobs)) for name in names]
    differing = [row for row in hyperparameters if row.differs]
    identical = [row for row in hyperparameters if not row.differs] if show_all else []
    return [*summary, *differing, *identical]


def shown_value(label: str, value: Any) -> str:
    if value is None:
        return "-"
    if label == "best_val_accuracy":
        return f"{value:.2%}"
    if label == "duration":
        return f"{value:.1f}s"
    return value if isinstance(value, str) else json.dumps(value)


def comparison_table(jobs: Sequence[Job], rows: Sequence[Row]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("FIELD", no_wrap=True)
    for job in jobs:
        table.add_column(job["id"][:SHORT_ID_CHARS], overflow="fold")
    for row in rows:
        style = DIFFERS_STYLE if row.differs else ""
        cells = [Text(shown_value(row.label, value), style=style) for value in row.values]
        # The mark says it without colour too (a pipe, NO_COLOR).
        table.add_row(DIFFERS_MARK if row.differs else "", Text(row.label, style=style), *cells)
    return table


def compare(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(metavar="ID", help="Two jobs or more.", show_default=False)],
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="Show the identical hyperparameters too.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """Jobs side by side: summary, then hyperparameters, differing ones highlighted (*) and first."""
    ids = list(dict.fromkeys(ids))
    if len(ids) < 2:
        raise typer.BadParameter("give two different job ids or more", param_hint="ID")
    client = ctx.obj
    assert isinstance(client, Client)
    jobs = [client.get_job(job_id) for job_id in ids]
    rows = comparison_rows(jobs, show_all=show_all)
    if as_json:
        listed = [{"field": row.label, "values": list(row.values), "differs": row.differs} for row in rows]
        typer.echo(json.dumps({"jobs": ids, "rows": listed}, indent=2))
        return
    Console().print(comparison_table(jobs, rows))
