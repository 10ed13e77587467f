"""One migrator at a time: API processes that start together must not upgrade the same
database at once (both would create the tables, or one would copy a table the other alters)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

# Any fixed number that no other user of the database takes: "trainq" in ASCII.
ADVISORY_LOCK_KEY = 0x747261696E71


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Held until the block ends: PostgreSQL's session advisory lock on a connection of its own,
    or an exclusive flock on <database file>.migrate.lock; nothing for an in-memory database,
    which no other process can see."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine):
            yield
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with Path(f"{database}.migrate.lock").open("a") as lock_file:
        # Released when the file closes, and by the kernel if this process dies.
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


@contextmanager
def _advisory_lock(engine: Engine) -> Iterator[None]:
    # Autocommit: the connection holds the lock without an open transaction, which
    # idle_in_transaction_session_timeout could end. The server releases it if this process dies.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
