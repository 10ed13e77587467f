"""`trainq submit`: the job comes from a file, `--set key=value` and the named flags, in that order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from trainq.client import Client
from trainq.jobfile import JobFileError, JobRequest, build_request, parse_assignments, read_job_file


def submit(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", dir_okay=False, help="JSON or YAML: a POST /jobs body, or just hyperparameters."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name to recognise the job by.")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="digits, fake, imagefolder, mnist, fashion_mnist or cifar10.")
    ] = None,
    dataset_path: Annotated[
        str | None, typer.Option(help="imagefolder: a folder in TRAINQ_DATA_DIR.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="mlp, small_cnn, resnet18, mobilenet_v3_small or efficientnet_b0.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs to train.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training and validation batch size.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Initial learning rate (learning_rate).")] = None,
    optimizer: Annotated[str | None, typer.Option(help="adam, adamw or sgd.")] = None,
    lr_scheduler: Annotated[str | None, typer.Option(help="none, step, cosine, plateau or onecycle.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay.")] = None,
    early_stopping_patience: Annotated[int | None, typer.Option(help="Epochs without improvement.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Resize images to this square size.")] = None,
    amp: Annotated[str | None, typer.Option(help="Mixed precision: off, bf16 or fp16.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seeds the split, initialisation and shuffling.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", "-s", help="Any hyperparameter as key=value (repeatable), e.g. -s momentum=0.8."
        ),
    ] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts a lost job may use (1-20).")] = None,
    max_runtime: Annotated[
        float | None, typer.Option(help="Training seconds allowed over all attempts (max_runtime_seconds).")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Retrying with the same key queues one job.")
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
        "learning_rate": lr,
        "optimizer": optimizer,
        "lr_scheduler": lr_scheduler,
        "weight_decay": weight_decay,
        "early_stopping_patience": early_stopping_patience,
        "image_size": image_size,
        "amp": amp,
        "device": device,
        "seed": seed,
    }
    try:
        request = build_request(
            read_job_file(file) if file is not None else JobRequest(),
            assignments=parse_assignments(set_ or []),
            flags=flags,
            name=name,
            max_attempts=max_attempts,
            max_runtime_seconds=max_runtime,
        )
    except JobFileError as exc:
        raise typer.BadParameter(str(exc)) from None
    client = ctx.obj
    assert isinstance(client, Client)
    job = client.submit(
        request.hyperparameters,
        name=request.name,
        max_attempts=request.max_attempts,
        max_runtime_seconds=request.max_runtime_seconds,
        dry_run=dry_run,
        idempotency_key=idempotency_key,
    )
    if dry_run:
        typer.echo(json.dumps(job, indent=2))
    else:
        typer.echo(job["id"])
