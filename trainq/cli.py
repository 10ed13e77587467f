"""`trainq`: submit, follow and fetch training jobs from the command line.

Data a script may capture (a job id, a downloaded path, --json) goes to stdout;
progress and messages go to stderr. Exit codes: 0 success, 1 an error (or, for
`watch`, a job that did not succeed), 2 a usage error.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TransferSpeedColumn,
)

from trainq import compare, listing, render, submit
from trainq.client import Client
from trainq.command_support import client_of, reports_errors
from trainq.delete import delete
from trainq.edit import edit
from trainq.job_details import job_details
from trainq.job_events import EpochEvent, ProgressEvent, StatusEvent
from trainq.sweep import sweep_app

app = typer.Typer(
    name="trainq",
    help="Submit, follow and fetch trainq training jobs. The server is TRAINQ_URL (default http://127.0.0.1:8000).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: it wraps its columns to the terminal, where rich cut long option names at 80.
    rich_markup_mode=None,
)


@app.callback()
@reports_errors
def connect(
    ctx: typer.Context,
    # Not typer's envvar: the client reads TRAINQ_URL itself, so its errors can say where a bad URL came from.
    url: Annotated[
        str | None, typer.Option(help="The trainq server (default: TRAINQ_URL, else http://127.0.0.1:8000).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="TRAINQ_API_KEY", help="Sent as 'Authorization: Bearer <key>'.")
    ] = None,
) -> None:
    client = Client(url, api_key)
    ctx.obj = client
    ctx.call_on_close(client.close)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


# Short help: the commands' list shows one line each, cut with "..." where the docstring is longer.
app.command(short_help="Queue a job and print its id.")(reports_errors(submit.submit))
app.add_typer(sweep_app)
app.command(short_help="Delete an ended job, or one of its checkpoints.")(reports_errors(delete))
app.command("list", short_help="The newest jobs, their status and best accuracy.")(
    reports_errors(listing.list_jobs)
)
app.command(short_help="Change a job's name, tags, notes or priority.")(reports_errors(edit))


@app.command()
@reports_errors
def show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False,
) -> None:
    """A job's details, its epoch table and its checkpoints."""
    job = client_of(ctx).get_job(job_id)
    if as_json:
        _echo_json(job)
        return
    console = Console()
    console.print(job_details(job))
    if job["metrics"]:
        console.print()
        console.print(render.metrics_table(job["metrics"]))
    if job["checkpoints"]:
        console.print()
        console.print(render.checkpoints_table(job["checkpoints"]))
    # The test split when there is one: the figures to ship a model by.
    evaluated = job.get("test_metrics") or job.get("val_metrics")
    if evaluated:
        console.print()
        console.print(render.evaluation_table(evaluated, "test" if job.get("test_metrics") else "validation"))


app.command(short_help="Jobs side by side, what differs first.")(reports_errors(compare.compare))


@app.command()
@reports_errors
def watch(ctx: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Follow a job until it ends; exit 0 only if it succeeded."""
    client = client_of(ctx)
    console = Console()
    epochs = client.get_job(job_id)["hyperparameters"].get("epochs", "?")
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("waiting", total=1.0)
        status, epoch, header_shown = "queued", 0, False
        for event in client.watch(job_id):
            match event:
                case EpochEvent():
                    if not header_shown:
                        bar.console.print(render.epoch_header())
                        header_shown = True
                    bar.console.print(render.epoch_line(asdict(event)))
                case ProgressEvent():
                    epoch = event.epoch
                    bar.update(task, completed=event.progress)
                case StatusEvent():
                    status = event.status
            bar.update(task, description=f"{status} epoch {epoch}/{epochs}")
    # After the end event: the job's final state, its runtime and error included.
    job = client.get_job(job_id)
    if job["status"] == "succeeded":
        typer.echo(f"{job_id} succeeded after {job['current_epoch']} epochs ({job['runtime_seconds']:.1f}s)")
        return
    error = job.get("error")
    reason = f": {error['reason']}: {error['message']}" if error else ""
    typer.echo(f"{job_id} {job['status']}{reason}", err=True)
    raise typer.Exit(1)


@app.command(short_help="Cancel a queued or running job.")
@reports_errors
def cancel(ctx: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Cancel a queued or running job (a running one stops within seconds and keeps its checkpoints)."""
    job = client_of(ctx).cancel(job_id)
    typer.echo(f"{job['id']} {job['status']}")


@app.command()
@reports_errors
def logs(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    tail: Annotated[int | None, typer.Option(min=1, help="Only the last N lines.")] = None,
    attempt: Annotated[int | None, typer.Option(min=1, help="Only this attempt's log.")] = None,
) -> None:
    """Print a job's training log (every attempt, in order)."""
    typer.echo(client_of(ctx).logs(job_id, tail=tail, attempt=attempt), nl=False)


@app.command(short_help="Download a checkpoint or an exported model.")
@reports_errors
def download(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    ref: Annotated[str, typer.Argument(metavar="[latest|best|N]", help="Which checkpoint.")] = "best",
    export: Annotated[
        str | None,
        typer.Option(
            "--export",
            metavar="FORMAT|NAME",
            help="An exported model instead of a checkpoint: safetensors, torchscript, onnx, or its file name.",
        ),
    ] = None,
    output: Annotated[
        # A str, not a Path: a Path drops the trailing '/' that asks for a folder.
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="A file, or a folder (an existing one, or any path ending in '/', created when missing) "
            "that gets the server's file name (default: the current folder).",
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted download from PATH.part.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Download a checkpoint (or, with --export, an exported model), verify its sha256 and print where it went."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    bar = Progress(*columns, console=Console(stderr=True))
    task = bar.add_task(f"export {export}" if export else f"checkpoint {ref}", total=None)

    def advance(done: int, total: int) -> None:
        # Started on the first bytes, so a bad job id or ref prints only its error.
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total)

    try:
        client = client_of(ctx)
        if export is not None:
            result = client.download_export(
                job_id, export, output, progress=advance, resume=resume, force=force
            )
        else:
            result = client.download_checkpoint(
                job_id, ref, output, progress=advance, resume=resume, force=force
            )
    finally:
        bar.stop()
    resumed = f", resumed at byte {result.resumed_from_bytes}" if result.resumed_from_bytes else ""
    what = f"epoch {result.epoch}" if result.epoch is not None else result.path.name
    typer.echo(
        f"{what}: transferred {result.transferred_bytes} of {result.size_bytes} bytes{resumed}; "
        f"sha256 {result.sha256} verified",
        err=True,
    )
    typer.echo(str(result.path))


def main() -> None:
    app(prog_name="trainq")
