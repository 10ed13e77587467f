"""Damaging a real SQLite file on disk, as a crash or a bad disk can."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from app.db import make_engine
from app.migrations import upgrade
from tests.factories import submit_job

_LEAF_TABLE_PAGE = 0x0D
# A leaf page's header is 8 bytes; its array of 2-byte cell offsets follows.
_CELL_POINTERS_AT = 8


def trainq_database(url: str, *, jobs: int) -> list[str]:
    """A real trainq database holding `jobs` queued jobs, closed again; their ids."""
    engine = make_engine(url)
    upgrade(engine)
    job_ids = [submit_job(engine).id for _ in range(jobs)]
    engine.dispose()
    return job_ids


def break_btree_page(db_path: Path, *, table: str = "jobs") -> None:
    """Make the second row of `table` point at the first row's bytes: a b-tree error that
    PRAGMA quick_check reports (rather than failing to read the file). The table must fit
    in one page and hold two rows or more; no connection may be open."""
    with closing(sqlite3.connect(db_path)) as connection:
        # Every committed page into the main file, so that the damage is not hidden by the WAL.
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (page_size,) = connection.execute("PRAGMA page_size").fetchone()
        (root,) = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    page_at = (root - 1) * page_size
    with db_path.open("r+b") as file:
        file.seek(page_at)
        header = file.read(_CELL_POINTERS_AT + 4)
        cells = int.from_bytes(header[3:5], "big")
        assert header[0] == _LEAF_TABLE_PAGE and cells >= 2, f"{table} must be one leaf page of 2+ rows"
        file.seek(page_at + _CELL_POINTERS_AT + 2)
        file.write(header[_CELL_POINTERS_AT : _CELL_POINTERS_AT + 2])


def write_not_a_database(db_path: Path) -> None:
    db_path.write_bytes(b"these bytes were never a SQLite database\n" * 200)
