from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from app.db import _process_writers, make_engine, read_session, write_session
from app.settings import Settings
from tests.support.databases import sqlite_only

pytestmark = sqlite_only


def database_path(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


def test_sqlite_connections_use_wal_and_a_busy_timeout(engine: Engine) -> None:
    with read_session(engine) as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_write_sessions_take_the_write_lock_before_their_first_write(
    engine: Engine, settings: Settings
) -> None:
    other = sqlite3.connect(database_path(settings), timeout=0, isolation_level=None)
    with write_session(engine) as session:
        session.execute(text("SELECT count(*) FROM jobs"))
        # A reader-only transaction would let this writer in; an immediate one must not.
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()


def test_read_sessions_do_not_block_writers(engine: Engine, settings: Settings) -> None:
    other = sqlite3.connect(database_path(settings), timeout=0, isolation_level=None)
    with read_session(engine) as session:
        session.execute(text("SELECT count(*) FROM jobs"))
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    other.close()


def test_a_processs_writers_of_one_file_queue_on_one_lock_while_a_write_session_is_open(
    settings: Settings,
) -> None:
    # Handed over at once, where SQLite's busy handler would leave the write lock free for up to
    # 100 ms between polls: request threads contending through it answered 45 POSTs a second.
    first, second = make_engine(settings.database_url), make_engine(settings.database_url)
    lock = _process_writers(second)
    inside, leave = threading.Event(), threading.Event()

    def write() -> None:
        with write_session(first):
            inside.set()
            leave.wait()

    writer = threading.Thread(target=write)
    writer.start()
    assert inside.wait(timeout=60)
    held_while_open = not lock.acquire(blocking=False)
    leave.set()
    writer.join()
    assert held_while_open
    assert lock.acquire(blocking=False)
    lock.release()
    first.dispose()
    second.dispose()
