"""Schema migrations: the Alembic revisions in versions/, and the checks around them.

The API upgrades the database to the latest revision when it starts (`upgrade`); a worker
only checks it (`check_current`) and refuses to start on another schema: workers run on many
hosts, maybe with other versions, and the schema changes once, where the API runs. `python -m app.migrations` does either by
hand. A database that trainq 0.1.0 made (create_all, before revisions) is adopted as
revision 0001 and upgraded in place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from app.db import writer

from .locking import migration_lock

logger = logging.getLogger(__name__)

UPGRADE_COMMAND = "python -m app.migrations upgrade"
VERSION_TABLE = "alembic_version"
# What trainq 0.1.0's create_all made: revision 0001, without the alembic_version table.
UNVERSIONED_REVISION = "0001"
UNVERSIONED_TABLES = frozenset({"jobs", "epoch_metrics", "checkpoints", "job_events"})


class SchemaOutOfDate(RuntimeError):
    """The database's schema is not the revision this code was written for."""


class UnknownSchema(RuntimeError):
    """The database has some of trainq's tables but no revision: not a schema trainq made."""


def upgrade(engine: Engine, *, revision: str = "head") -> None:
    """Bring the database to the latest revision (or to `revision`); safe to call from several
    processes at once."""
    with migration_lock(engine), _migration_transaction(engine) as connection:
        before = _current_revision(connection)
        if before is None and _adopt_unversioned(connection):
            before = UNVERSIONED_REVISION
        if before is not None and before not in known_revisions():
            raise SchemaOutOfDate(_newer_than_code(engine, before))
        command.upgrade(_config(connection), revision)
        after = _current_revision(connection)
    where = _shown(engine)
    if before == after:
        logger.info("database %s is at schema revision %s already", where, after)
    else:
        logger.info("database %s upgraded from revision %s to %s", where, before or "(empty)", after)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to `revision` ("-1": one step; "base": empty)."""
    with migration_lock(engine), _migration_transaction(engine) as connection:
        before = _current_revision(connection)
        command.downgrade(_config(connection), revision)
        after = _current_revision(connection)
    where = _shown(engine)
    logger.info("database %s downgraded from revision %s to %s", where, before, after or "(empty)")


def check_current(engine: Engine) -> None:
    """Raise SchemaOutOfDate, with a one-line message saying what to do, unless the database is
    at the revision this code needs."""
    with engine.connect() as connection:
        current = _current_revision(connection)
        unversioned = current is None and bool(_trainq_tables(connection))
    head = head_revision()
    if current == head:
        return
    where = f"the database {_shown(engine)}"
    upgrade_it = f"upgrade it with `{UPGRADE_COMMAND}` (the API also upgrades it when it starts)"
    if unversioned:
        raise SchemaOutOfDate(
            f"{where} has trainq 0.1.0's schema (no revision), this code needs {head}: {upgrade_it}"
        )
    if current is None:
        raise SchemaOutOfDate(
            f"{where} has no trainq schema yet, this code needs revision {head}: {upgrade_it}"
        )
    if current not in known_revisions():
        raise SchemaOutOfDate(_newer_than_code(engine, current))
    raise SchemaOutOfDate(f"{where} is at schema revision {current}, this code needs {head}: {upgrade_it}")


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None for an empty database or one that trainq 0.1.0 made."""
    with engine.connect() as connection:
        return _current_revision(connection)


@cache
def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "app/migrations/versions holds no revision"
    return head


@cache
def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def _newer_than_code(engine: Engine, current: str) -> str:
    return (
        f"the database {_shown(engine)} is at schema revision {current}, which this code does not know "
        f"(it needs {head_revision()}): a newer trainq upgraded it; run that version here too"
    )


def _shown(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    # A package resource: the revisions ship inside app, wherever it is installed.
    config.set_main_option("script_location", "app:migrations")
    config.attributes["connection"] = connection
    return config


def _current_revision(connection: Connection) -> str | None:
    # Read here rather than through alembic's MigrationContext, which logs two lines each time.
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def _trainq_tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) & UNVERSIONED_TABLES


def _adopt_unversioned(connection: Connection) -> bool:
    """Stamp a database that trainq 0.1.0 made as revision 0001, so that upgrading keeps its
    rows; False for an empty database."""
    found = _trainq_tables(connection)
    if not found:
        return False
    if found != UNVERSIONED_TABLES:
        raise UnknownSchema(
            f"the database has trainq's tables {', '.join(sorted(found))} but not "
            f"{', '.join(sorted(UNVERSIONED_TABLES - found))}, and no schema revision: it was not made by "
            "trainq 0.1.0 or later, so it is not upgraded; point TRAINQ_DATABASE_URL at a trainq "
            "database or an empty one"
        )
    command.stamp(_config(connection), UNVERSIONED_REVISION)
    logger.info("database made by trainq 0.1.0 (no revision): adopted as revision %s", UNVERSIONED_REVISION)
    return True


@contextmanager
def _migration_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction for the whole upgrade (both databases run DDL in a
    transaction: a failed upgrade leaves nothing half done), committed at the end."""
    with writer(engine).connect() as connection:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            # Batch mode copies a table and drops the old one; with foreign keys on, dropping jobs
            # would delete every row that references it (ON DELETE CASCADE). SQLite ignores this
            # pragma inside a transaction, so it goes to the driver before BEGIN.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with connection.begin():
                yield connection
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError("the migration left rows whose job does not exist; rolled back")
        finally:
            if sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
