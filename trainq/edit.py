"""`trainq edit`: change a job's name, tags, notes or (while it is queued) its priority."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from trainq.command_support import client_of


def update_fields(
    *,
    name: str | None,
    tags: list[str] | None,
    clear_tags: bool,
    notes: str | None,
    priority: int | None,
) -> dict[str, Any]:
    """The PATCH body: only what the command line gives. An empty name or notes clears it (null);
    `tags` replace the job's list, as the API does; `clear_tags` sends an empty list."""
    if clear_tags and tags:
        raise typer.BadParameter("give --tag or --clear-tags, not both (--tag replaces the tags)")
    fields: dict[str, Any] = {}
    if name is not None:
        fields["name"] = name or None
    if tags:
        fields["tags"] = list(tags)
    elif clear_tags:
        fields["tags"] = []
    if notes is not None:
        fields["notes"] = notes or None
    if priority is not None:
        fields["priority"] = priority
    if not fields:
        raise typer.BadParameter("nothing to change: give --name, --tag, --clear-tags, --notes or --priority")
    return fields


def edit(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    name: Annotated[str | None, typer.Option(metavar="NAME", help="The new name ('' clears it).")] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TAG",
            help="Repeatable. The tags given replace all of the job's tags (keep one by giving it again).",
        ),
    ] = None,
    clear_tags: Annotated[bool, typer.Option("--clear-tags", help="Remove every tag.")] = False,
    notes: Annotated[str | None, typer.Option(metavar="TEXT", help="The new notes ('' clears them).")] = None,
    priority: Annotated[
        int | None,
        typer.Option(help="The new priority (-1000 to 1000); only while the job is queued."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the changed job as JSON.")] = False,
) -> None:
    """Change what the options give, nothing else, and print the job's id."""
    fields = update_fields(name=name, tags=tag, clear_tags=clear_tags, notes=notes, priority=priority)
    job = client_of(ctx).update_job(job_id, **fields)
    typer.echo(json.dumps(job, indent=2) if as_json else job["id"])
