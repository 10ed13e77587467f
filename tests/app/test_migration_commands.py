"""Migrations as processes run them: API processes upgrading at once, the lock they queue on,
`python -m app.migrations` by hand, and a worker that finds the schema older than its code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from app.db import make_engine
from app.migrations import current_revision, head_revision, upgrade
from app.migrations.locking import migration_lock
from tests.support.polling import wait_for
from tests.support.processes import REPO_ROOT, service_env

# Generous: each process only imports the app and runs a few statements.
PROCESS_TIMEOUT_S = 120
UPGRADE_HINT = "upgrade it with `python -m app.migrations upgrade` (the API also upgrades it when it starts)"


def migrations_command(database_url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.migrations", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "TRAINQ_DATABASE_URL": database_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_migrations(database_url: str, *args: str) -> tuple[int, str, str]:
    command = migrations_command(database_url, *args)
    out, err = command.communicate(timeout=PROCESS_TIMEOUT_S)
    return command.returncode, out.strip(), err.strip()


def waits_for_the_lock(engine: Engine, pid: int) -> bool:
    """Whether process `pid` is queued on the migration lock (not merely slow to start)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            waiting = connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid) "
                    "WHERE locktype = 'advisory' AND NOT granted AND datname = current_database()"
                )
            ).scalar_one()
        return waiting > 0
    # The kernel lists a blocked flock as "N: -> FLOCK ADVISORY WRITE <pid> ...".
    return any("->" in line and f" {pid} " in line for line in Path("/proc/locks").read_text().splitlines())


def test_processes_upgrading_a_fresh_database_at_once_all_succeed_with_one_head_row(
    empty_database: str,
) -> None:
    commands = [migrations_command(empty_database) for _ in range(4)]
    outputs = [command.communicate(timeout=PROCESS_TIMEOUT_S) for command in commands]
    assert [command.returncode for command in commands] == [0] * 4, outputs
    engine = make_engine(empty_database)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()
    assert versions == [head_revision()]


def test_an_upgrade_waits_while_another_process_holds_the_migration_lock(empty_database: str) -> None:
    engine = make_engine(empty_database)
    with migration_lock(engine):
        command = migrations_command(empty_database)

        def queued() -> bool:
            assert command.poll() is None, f"it did not wait for the lock: {command.communicate()}"
            return waits_for_the_lock(engine, command.pid)

        wait_for(queued, timeout_s=PROCESS_TIMEOUT_S, what="the second migrator to queue on the lock")
        assert current_revision(engine) is None
    assert command.wait(timeout=PROCESS_TIMEOUT_S) == 0, command.communicate()
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_the_command_says_where_the_database_is_and_upgrades_or_downgrades_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trainq.db'}"
    head = head_revision()
    assert run_migrations(url, "current") == (
        1,
        f"the database {url} has no trainq schema yet, this code needs revision {head}: {UPGRADE_HINT}",
        "",
    )
    assert run_migrations(url) == (0, f"database {url} upgraded from revision (empty) to {head}", "")
    assert run_migrations(url, "current") == (
        0,
        f"the database {url} is at the latest schema revision, {head}",
        "",
    )
    assert run_migrations(url, "downgrade", "-1") == (
        0,
        f"database {url} downgraded from revision {head} to {int(head) - 1:04d}",
        "",
    )
    assert run_migrations(url, "downgrade", "0042") == (
        1,
        "",
        "python -m app.migrations: Can't locate revision identified by '0042'",
    )


@pytest.mark.parametrize("revision", ["0001", None], ids=["at-0001", "empty"])
def test_a_worker_refuses_a_database_older_than_its_code_in_one_line(
    tmp_path: Path, revision: str | None
) -> None:
    url = f"sqlite:///{tmp_path / 'trainq.db'}"
    engine = make_engine(url)
    if revision is not None:
        upgrade(engine, revision=revision)
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--burst"],
        env=service_env(tmp_path, TRAINQ_DATABASE_URL=url),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
    )
    found = (
        "is at schema revision 0001, this code needs" if revision else "has no trainq schema yet, this code"
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"trainq worker: the database {url} {found}") and line.endswith(UPGRADE_HINT)
    # It left the schema as it was: only the API (or the command) migrates.
    assert current_revision(engine) == revision
    engine.dispose()
