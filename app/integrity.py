"""Start-up checks that a damaged or rolled-back database does not go unnoticed.

A crash can leave a SQLite file with broken pages, or recovery can roll back
committed writes (a damaged WAL): jobs that succeeded then run again, or vanish
beside their artifact folders. The API and the workers refuse to start on a
file that fails SQLite's quick_check; the API also compares the database with
the artifacts folder, which only grows, and reports what the database forgot.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from app.db import make_engine, read_session
from app.logs import attempt_logs
from app.models import Job

logger = logging.getLogger(__name__)

# new_job_id(): anything else in the artifacts folder is not a job's.
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_DAMAGE_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_SHOWN_LINES = 5
_SHOWN_IDS = 5
# Well under SQLite's limit on bound parameters.
_IDS_PER_QUERY = 500


class DamagedDatabase(RuntimeError):
    """The SQLite file fails quick_check: serving from it could lose or redo work."""


def check_database(*, url: str) -> None:
    """Raise DamagedDatabase unless SQLite's quick_check answers "ok". PostgreSQL is not
    checked: quick_check is SQLite's, and PostgreSQL verifies its own pages."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            findings = [str(row[0]) for row in connection.exec_driver_sql("PRAGMA quick_check")]
    except DBAPIError as exc:
        # A file damaged enough fails as it is opened or read, rather than in quick_check's answer.
        if getattr(exc.orig, "sqlite_errorcode", None) not in _DAMAGE_CODES:
            raise
        findings = [str(exc.orig)]
    finally:
        engine.dispose()
    if findings != ["ok"]:
        raise DamagedDatabase(_restore_advice(parsed.database or "", findings))


def _restore_advice(path: str, findings: list[str]) -> str:
    # quick_check's own header line says nothing a reader needs.
    lines = [line for line in "\n".join(findings).splitlines() if not line.startswith("*** ")]
    more = f" (and {len(lines) - _SHOWN_LINES} more)" if len(lines) > _SHOWN_LINES else ""
    name = Path(path).name
    return (
        f"the database {path} is damaged, so trainq will not start on it "
        f"(SQLite: {'; '.join(lines[:_SHOWN_LINES])}{more}). To restore it: stop every "
        f"trainq process (API and workers); copy {name}, {name}-wal and {name}-shm somewhere safe; then "
        f"either copy a backup over {name}, or salvage what is readable with "
        f'sqlite3 {path} ".recover" | sqlite3 restored.db (".dump" where that sqlite3 has no .recover) '
        f"and put restored.db in place of {name}; "
        f"either way delete {name}-wal and {name}-shm before starting trainq again. "
        'See README, "Backups and a damaged database".'
    )


def check_artifacts(*, engine: Engine, artifacts_dir: Path) -> list[str]:
    """What the artifacts folder shows that the database does not know, as short sentences
    (logged at ERROR once); empty when they agree."""
    # Folders first, rows second: a worker commits its claim before it creates the attempt's
    # log, so every log seen here has its row committed by the time the rows are read.
    on_disk = _attempts_on_disk(artifacts_dir)
    in_database = _attempts_in_database(engine, list(on_disk))
    unknown = sorted(set(on_disk) - set(in_database))
    behind = sorted(job_id for job_id, n in in_database.items() if n < on_disk[job_id])
    problems = []
    if unknown:
        problems.append(
            f"job folders with no job in the database: {_examples(unknown)} "
            "(the database knows fewer jobs than the artifacts folder holds)"
        )
    if behind:
        problems.append(
            f"jobs whose folder has logs of more attempts than their row counts: {_examples(behind)} "
            "(the database lost writes, as a rolled-back WAL does)"
        )
    if problems:
        logger.error(
            "the database %s knows less than the artifacts folder %s: %s. Jobs may run again or be "
            "missing. Stop every trainq process and restore the database from a backup (README: "
            '"Backups and a damaged database"); if this database is meant to start afresh, move those '
            "folders out of the artifacts folder. Serving on; GET /health reports degraded until a "
            "restart finds them agreeing.",
            engine.url.render_as_string(hide_password=True),
            artifacts_dir,
            "; ".join(problems),
        )
    return problems


def _attempts_on_disk(artifacts_dir: Path) -> dict[str, int]:
    """{job id: the highest attempt that wrote a log, 0 if none} for each job folder."""
    if not artifacts_dir.is_dir():
        return {}
    found: dict[str, int] = {}
    for job_dir in artifacts_dir.iterdir():
        if _JOB_ID.match(job_dir.name) and job_dir.is_dir():
            logs = attempt_logs(job_dir)
            found[job_dir.name] = logs[-1][0] if logs else 0
    return found


def _attempts_in_database(engine: Engine, job_ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    with read_session(engine) as session:
        for start in range(0, len(job_ids), _IDS_PER_QUERY):
            chunk = job_ids[start : start + _IDS_PER_QUERY]
            rows = session.exec(select(Job.id, Job.attempts).where(col(Job.id).in_(chunk)))
            found.update(dict(rows.all()))
    return found


def _examples(job_ids: list[str]) -> str:
    """The count and the first few ids: 3 (a, b, c)."""
    more = f" and {len(job_ids) - _SHOWN_IDS} more" if len(job_ids) > _SHOWN_IDS else ""
    return f"{len(job_ids)} ({', '.join(job_ids[:_SHOWN_IDS])}{more})"
