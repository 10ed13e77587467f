"""The training process's entry point, in a module light enough for the worker to import.

The worker names this function as the process target without loading torch;
the fork server that starts the process has torch and worker.training_process preloaded.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

from worker.protocol import TrainingTask


def training_process_main(conn: Connection, task: TrainingTask) -> None:
    from worker.training_process import run_job

    run_job(conn, task)


def ready() -> None:
    """Runs in the first process forked from the server: once it has run, the server is ready."""
