"""`trainq`: submit, follow and fetch training jobs from the command line.

Data a script may capture (a job id, a downloaded path, --json) goes to stdout;
progress and messages go to stderr. Exit codes: 0 success, 1 an error (or, for
`watch`, a job that did not succeed), 2 a usage error.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import islice
from typing import Annotated, Any, ParamSpec, TypeVar

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

from trainq import render, submit
from trainq.client import Client
from trainq.errors import TrainqError

WATCH_POLL_INTERVAL_S = 1.0

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="trainq",
    help="Submit, follow and fetch trainq training jobs. The server is TRAINQ_URL (default http://127.0.0.1:8000).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A TrainqError becomes one line on stderr and exit code 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except TrainqError as exc:
            typer.echo(f"trainq: error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper


@app.callback()
@_reports_errors
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


def _client(ctx: typer.Context) -> Client:
    assert isinstance(ctx.obj, Client)
    return ctx.obj


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


app.command()(_reports_errors(submit.submit))


@app.command("list")
@_reports_errors
def list_jobs(
    ctx: typer.Context,
    status: Annotated[list[str] | None, typer.Option(help="Only jobs in this state (repeatable).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many jobs, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the jobs as JSON.")] = False,
) -> None:
    """The newest jobs: id, name, status, progress, epoch, age."""
    jobs = list(islice(_client(ctx).iter_jobs(status=status, page_size=limit), limit))
    if as_json:
        _echo_json(jobs)
    else:
        Console().print(render.jobs_table(jobs, datetime.now(UTC)))


@app.command()
@_reports_errors
def show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False,
) -> None:
    """A job's details, its epoch table and its checkpoints."""
    job = _client(ctx).get_job(job_id)
    if as_json:
        _echo_json(job)
        return
    console = Console()
    console.print(render.job_details(job))
    if job["metrics"]:
        console.print()
        console.print(render.metrics_table(job["metrics"]))
    if job["checkpoints"]:
        console.print()
        console.print(render.checkpoints_table(job["checkpoints"]))


@app.command()
@_reports_errors
def watch(ctx: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Follow a job until it ends; exit 0 only if it succeeded."""
    client = _client(ctx)
    console = Console()
    last_epoch = 0
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("waiting", total=1.0)
        while True:
            # The job first: once it is final, the rows fetched after it are all there are.
            job = client.get_job(job_id)
            for row in client.metrics(job_id, after_epoch=last_epoch):
                if last_epoch == 0:
                    bar.console.print(render.epoch_header())
                bar.console.print(render.epoch_line(row))
                last_epoch = row["epoch"]
            bar.update(
                task, completed=job["progress"], description=f"{job['status']} epoch {render.epochs_of(job)}"
            )
            if job["status"] in render.FINAL_STATUSES:
                break
            time.sleep(WATCH_POLL_INTERVAL_S)
    if job["status"] == "succeeded":
        typer.echo(f"{job_id} succeeded after {job['current_epoch']} epochs ({job['runtime_seconds']:.1f}s)")
        return
    error = job.get("error")
    reason = f": {error['reason']}: {error['message']}" if error else ""
    typer.echo(f"{job_id} {job['status']}{reason}", err=True)
    raise typer.Exit(1)


@app.command()
@_reports_errors
def cancel(ctx: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Cancel a queued or running job (a running one stops within seconds and keeps its checkpoints)."""
    job = _client(ctx).cancel(job_id)
    typer.echo(f"{job['id']} {job['status']}")


@app.command()
@_reports_errors
def logs(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    tail: Annotated[int | None, typer.Option(min=1, help="Only the last N lines.")] = None,
    attempt: Annotated[int | None, typer.Option(min=1, help="Only this attempt's log.")] = None,
) -> None:
    """Print a job's training log (every attempt, in order)."""
    typer.echo(_client(ctx).logs(job_id, tail=tail, attempt=attempt), nl=False)


@app.command()
@_reports_errors
def download(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    ref: Annotated[str, typer.Argument(metavar="[latest|best|N]", help="Which checkpoint.")] = "best",
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
    """Download a checkpoint, verify its sha256 and print where it went."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    bar = Progress(*columns, console=Console(stderr=True))
    task = bar.add_task(f"checkpoint {ref}", total=None)

    def advance(done: int, total: int) -> None:
        # Started on the first bytes, so a bad job id or ref prints only its error.
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total)

    try:
        result = _client(ctx).download_checkpoint(
            job_id, ref, output, progress=advance, resume=resume, force=force
        )
    finally:
        bar.stop()
    resumed = f", resumed at byte {result.resumed_from_bytes}" if result.resumed_from_bytes else ""
    typer.echo(
        f"epoch {result.epoch}: transferred {result.transferred_bytes} of {result.size_bytes} bytes{resumed}; "
        f"sha256 {result.sha256} verified",
        err=True,
    )
    typer.echo(str(result.path))


def main() -> None:
    app(prog_name="trainq")
