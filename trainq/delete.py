"""`trainq delete`: remove an ended job with all its files, or one of its checkpoints."""

from __future__ import annotations

from typing import Annotated

import typer

from trainq.client import Client


def delete(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    checkpoint: Annotated[
        int | None,
        typer.Option(
            "--checkpoint",
            metavar="EPOCH",
            min=0,
            help="Delete only this epoch's checkpoint (not the best one, nor the one a running job resumes from).",
        ),
    ] = None,
) -> None:
    """Delete an ended job: its metrics, checkpoints, exports and logs (cancel a queued or running one first)."""
    client = ctx.obj
    assert isinstance(client, Client)
    if checkpoint is None:
        client.delete_job(job_id)
        typer.echo(f"{job_id} deleted")
    else:
        client.delete_checkpoint(job_id, checkpoint)
        typer.echo(f"{job_id}: checkpoint of epoch {checkpoint} deleted")
