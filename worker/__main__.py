"""`python -m worker`: run a worker until SIGINT/SIGTERM (`--burst`: until the queue is empty)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

from pydantic import ValidationError

from app.db import WORKER_POOL, make_engine
from app.integrity import DamagedDatabase, check_database
from app.migrations import SchemaOutOfDate, check_current
from app.settings import get_settings
from worker.claim_loop import Worker
from worker.remote import ApiFailure, ApiFiles

logger = logging.getLogger("worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="exit 0 once no job is queued")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        settings = get_settings()
    except ValidationError as exc:
        # One line, naming each bad variable and what to change.
        problems = "; ".join(
            f"TRAINQ_{str(error['loc'][0]).upper()}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        print(f"trainq worker: invalid settings: {problems}", file=sys.stderr)
        return 2
    # Made up front so a user sees where datasets and checkpoints go.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    try:
        check_database(url=settings.database_url)
    except DamagedDatabase as exc:
        print(f"trainq worker: {exc}", file=sys.stderr)
        return 1
    engine = make_engine(settings.database_url, pool=WORKER_POOL)
    try:
        # A worker never migrates: the API does (or `python -m app.migrations`), once, under a lock.
        check_current(engine)
    except SchemaOutOfDate as exc:
        print(f"trainq worker: {exc}", file=sys.stderr)
        engine.dispose()
        return 2

    if settings.api_url:
        files = ApiFiles.connect(settings.api_url, settings.api_key)
        try:
            files.check_access()
        except ApiFailure as exc:
            print(f"trainq worker: {exc}", file=sys.stderr)
            engine.dispose()
            return 2
        finally:
            files.close()

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            logger.warning(
                "second %s: exiting now; the job's lease will bring it back", signal.Signals(signum).name
            )
            os._exit(1)
        logger.info("%s: finishing the current batch, then handing the job back", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    Worker(engine=engine, settings=settings, stop=stop).run(burst=args.burst)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
