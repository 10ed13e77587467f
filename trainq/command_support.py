"""What every `trainq` command shares: errors as one line, and the client the callback made."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from trainq.client import Client
from trainq.errors import TrainqError

P = ParamSpec("P")
R = TypeVar("R")


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A TrainqError becomes one line on stderr and exit code 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except TrainqError as exc:
            typer.echo(f"trainq: error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def client_of(ctx: typer.Context) -> Client:
    """The client `trainq`'s callback put on the context (its server URL and key)."""
    assert isinstance(ctx.obj, Client)
    return ctx.obj
