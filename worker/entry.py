"""The training process's entry point, in a module light enough for the worker to import.

The worker names this function as the process target without loading torch;
the fork server that starts the process has torch and the runner preloaded.
"""

from __future__ import annotations

from typing import Any


def training_process_main(*args: Any) -> None:
    from worker.runner import run_job

    run_job(*args)


def ready() -> None:
    """Runs in the first process forked from the server: once it has run, the server is ready."""
