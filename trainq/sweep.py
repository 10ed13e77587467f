"""`trainq sweep`: submit a hyperparameter sweep from a file, show its jobs ranked, cancel it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainq import render
from trainq.command_support import client_of, reports_errors
from trainq.jobfile import JobFileError, read_document

sweep_app = typer.Typer(
    name="sweep",
    help="Hyperparameter sweeps: many jobs from one base job and a search space (grid or random).",
    short_help="Sweeps: many jobs from one base job and a search space.",
    no_args_is_help=True,
)


def read_sweep_file(path: Path) -> dict[str, Any]:
    """A POST /sweeps body, as JSON (.json) or YAML (anything else)."""
    loaded = read_document(path)
    if not isinstance(loaded, dict) or "parameters" not in loaded:
        raise JobFileError(
            f"{path} must hold a sweep: a mapping with method, parameters and (optionally) name, base, "
            "trials, seed and max_parallel"
        )
    return loaded


@sweep_app.command("submit")
@reports_errors
def submit_sweep(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(dir_okay=False, help="JSON or YAML: a POST /sweeps body.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the sweep as JSON.")] = False,
) -> None:
    """Queue every job of a sweep and print the sweep's id (only the id, unless --json)."""
    try:
        body = read_sweep_file(file)
    except JobFileError as exc:
        raise typer.BadParameter(str(exc)) from None
    sweep = client_of(ctx).submit_sweep(body)
    if as_json:
        typer.echo(json.dumps(sweep, indent=2))
        return
    typer.echo(f"sweep {sweep['name']!r}: {len(sweep['jobs'])} jobs queued", err=True)
    typer.echo(sweep["id"])


@sweep_app.command("show")
@reports_errors
def show_sweep(
    ctx: typer.Context,
    sweep_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the sweep as JSON.")] = False,
) -> None:
    """The sweep's jobs, best validation accuracy first, with the hyperparameters that vary."""
    sweep = client_of(ctx).get_sweep(sweep_id)
    if as_json:
        typer.echo(json.dumps(sweep, indent=2))
        return
    console = Console()
    console.print(sweep_summary(sweep))
    console.print()
    console.print(ranked_table(sweep))


@sweep_app.command("cancel")
@reports_errors
def cancel_sweep(ctx: typer.Context, sweep_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Cancel the sweep's queued and running jobs."""
    sweep = client_of(ctx).cancel_sweep(sweep_id)
    typer.echo(f"{sweep['id']} {counts_text(sweep['counts'])}")


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {status}" for status, count in counts.items() if count) or "no jobs"


def sweep_summary(sweep: Mapping[str, Any]) -> Text:
    space = sweep["space"]
    how = sweep["method"]
    if how == "random":
        how += f", {space.get('trials')} trials, seed {space.get('seed')}"
    parallel = f", at most {sweep['max_parallel']} at once" if sweep.get("max_parallel") else ""
    return Text(f"{sweep['name']} ({how}{parallel}): {counts_text(sweep['counts'])}")


def ranked_table(sweep: Mapping[str, Any]) -> Table:
    varied = list(sweep["varied"])
    table = Table(box=None, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("ID", no_wrap=True, min_width=32)
    table.add_column("STATUS", no_wrap=True, min_width=9)
    table.add_column("VAL ACC", justify="right", no_wrap=True)
    table.add_column("EPOCH", justify="right", no_wrap=True)
    for name in varied:
        table.add_column(name.upper(), justify="right", no_wrap=True)
    for rank, job in enumerate(sweep["jobs"], start=1):
        accuracy = job["best_val_accuracy"]
        table.add_row(
            str(rank),
            job["id"],
            render.status_text(job["status"]),
            "-" if accuracy is None else f"{accuracy:.4f}",
            str(job["current_epoch"]),
            *(_value(job["parameters"].get(name)) for name in varied),
        )
    return table


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
