"""`trainq list`: the jobs GET /jobs finds with the given filters, in the given order, as a table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import islice
from typing import Annotated

import typer
from rich.console import Console

from trainq import render
from trainq.choices import SORTS, STATUSES, JobSort
from trainq.command_support import client_of


def _known_statuses(statuses: list[str] | None) -> list[str] | None:
    # Typer takes a Literal for one value, not for a list of them.
    unknown = [status for status in statuses or [] if status not in STATUSES]
    if unknown:
        raise typer.BadParameter(f"{unknown[0]!r} is not one of {', '.join(map(repr, STATUSES))}")
    return statuses


def _iso_time(value: str | None) -> str | None:
    """An ISO 8601 time as the server reads it; a time without a zone is UTC, as on the server."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time, e.g. 2024-05-01 or 2024-05-01T12:00:00+02:00"
        ) from None


def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option(
            metavar="STATUS",
            callback=_known_statuses,
            help=f"Only jobs in this state (repeatable): {', '.join(STATUSES)}.",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(metavar="TAG", help="Only jobs with this tag (repeatable: with all of them)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(metavar="TEXT", help="Only jobs whose name holds this, in any case.")
    ] = None,
    model: Annotated[str | None, typer.Option(metavar="MODEL", help="Only jobs training this model.")] = None,
    dataset: Annotated[
        str | None, typer.Option(metavar="DATASET", help="Only jobs training on this dataset.")
    ] = None,
    sweep: Annotated[str | None, typer.Option(metavar="ID", help="Only this sweep's jobs.")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            callback=_iso_time,
            help="Only jobs created at or after this ISO 8601 time (no zone: UTC).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(metavar="TIME", callback=_iso_time, help="Only jobs created before this time."),
    ] = None,
    sort: Annotated[
        JobSort | None,
        typer.Option(
            metavar="ORDER",
            help=f"The order ('-': descending; jobs without the value last): {', '.join(SORTS)}. "
            "Default: -created_at, newest first.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many jobs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the jobs as JSON.")] = False,
    wide: Annotated[
        bool, typer.Option("--wide", "-w", help="Ids and names in full, even past the terminal's width.")
    ] = False,
) -> None:
    """The newest jobs (or those --sort puts first): id, name, status, progress, epoch, best
    accuracy, tags (when a job has some) and age."""
    found = client_of(ctx).iter_jobs(
        status=status,
        tag=tag,
        name=name,
        model=model,
        dataset=dataset,
        created_after=since,
        created_before=until,
        sweep=sweep,
        sort=sort,
        page_size=limit,
    )
    jobs = list(islice(found, limit))
    if as_json:
        typer.echo(json.dumps(jobs, indent=2))
        return
    table = render.jobs_table(jobs, datetime.now(UTC), wide=wide)
    console = Console()
    if wide:
        render.fit_width(console, table)
    console.print(table)
