"""`trainq submit`: the job comes from an earlier job (`--from`), a file, `--set key=value` and the
named flags, in that order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from trainq.choices import CHOICES, Augment, Dataset, Device, LrScheduler, Model, Optimizer, Precision
from trainq.client import Client
from trainq.jobfile import (
    JobFileError,
    JobRequest,
    build_request,
    overlaid,
    parse_assignments,
    read_job_file,
    request_of_job,
)


def _choice(field: str, what: str) -> typer.models.OptionInfo:
    """An option taking one of a hyperparameter's allowed values, which --help lists."""
    choices = CHOICES[field]
    return typer.Option(metavar=field.upper(), help=f"{what}: {', '.join(choices)}.")


def submit(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", dir_okay=False, help="JSON or YAML: a POST /jobs body, or just hyperparameters."
        ),
    ] = None,
    from_job: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="ID",
            help="Start from this job's request (hyperparameters, limits, resources, tags); -f, -s and flags change it.",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name to recognise the job by.")] = None,
    dataset: Annotated[Dataset | None, _choice("dataset", "The dataset")] = None,
    dataset_path: Annotated[
        str | None, typer.Option(help="imagefolder: a folder in TRAINQ_DATA_DIR.")
    ] = None,
    model: Annotated[Model | None, _choice("model", "The model")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs to train.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training and validation batch size.")] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", "--lr", help="Initial learning rate.")
    ] = None,
    optimizer: Annotated[Optimizer | None, _choice("optimizer", "The optimizer")] = None,
    lr_scheduler: Annotated[LrScheduler | None, _choice("lr_scheduler", "The learning-rate schedule")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay.")] = None,
    early_stopping_patience: Annotated[int | None, typer.Option(help="Epochs without improvement.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Resize images to this square size.")] = None,
    augment: Annotated[Augment | None, _choice("augment", "imagefolder's training augmentation")] = None,
    amp: Annotated[Precision | None, _choice("amp", "Mixed precision")] = None,
    device: Annotated[Device | None, _choice("device", "The device kind")] = None,
    seed: Annotated[int | None, typer.Option(help="Seeds the split, initialisation and shuffling.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help="Any hyperparameter as key=value (repeatable), e.g. -s momentum=0.8.",
        ),
    ] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts a lost job may use (1-20).")] = None,
    max_runtime_seconds: Annotated[
        float | None,
        typer.Option(
            "--max-runtime-seconds", "--max-runtime", help="Training seconds allowed over all attempts."
        ),
    ] = None,
    devices: Annotated[
        int | None, typer.Option(help="Devices of the job's --device kind it needs (resources.devices).")
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            metavar="LABEL",
            help="A label the worker must carry (repeatable; added to the file's resources.labels).",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(metavar="TAG", help="A tag to find the job by (repeatable; added to the file's tags)."),
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Retrying with the same key queues one job.")
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(
            help="Higher is claimed first (-1000 to 1000, default 0); a waiting job gains one level per 10 minutes."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the resolved request; queue nothing.")] = False,
) -> None:
    """Queue a job and print its id (only the id, so `id=$(trainq submit ...)` works)."""
    flags = {
        "dataset": dataset,
        "dataset_path": dataset_path,
        "model": model,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "optimizer": optimizer,
        "lr_scheduler": lr_scheduler,
        "weight_decay": weight_decay,
        "early_stopping_patience": early_stopping_patience,
        "image_size": image_size,
        "augment": augment,
        "amp": amp,
        "device": device,
        "seed": seed,
    }
    client = ctx.obj
    assert isinstance(client, Client)
    try:
        base = request_of_job(client.get_job(from_job)) if from_job is not None else JobRequest()
        if file is not None:
            base = overlaid(base, read_job_file(file))
        request = build_request(
            base,
            assignments=parse_assignments(set_ or []),
            flags=flags,
            name=name,
            max_attempts=max_attempts,
            max_runtime_seconds=max_runtime_seconds,
            devices=devices,
            labels=label or [],
            priority=priority,
            tags=tag or [],
        )
    except JobFileError as exc:
        raise typer.BadParameter(str(exc)) from None
    job = client.submit(
        request.hyperparameters,
        name=request.name,
        max_attempts=request.max_attempts,
        max_runtime_seconds=request.max_runtime_seconds,
        resources=request.resources,
        dry_run=dry_run,
        idempotency_key=idempotency_key,
        priority=request.priority,
        tags=request.tags,
    )
    if dry_run:
        typer.echo(json.dumps(job, indent=2))
    else:
        typer.echo(job["id"])
