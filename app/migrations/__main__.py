"""`python -m app.migrations [upgrade [REVISION] | current | downgrade REVISION]`: the schema of the
database in TRAINQ_DATABASE_URL, by hand (the API upgrades it by itself when it starts)."""

from __future__ import annotations

import argparse
import logging
import sys

from alembic.util import CommandError
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.db import make_engine
from app.integrity import DamagedDatabase, check_database
from app.migrations import SchemaOutOfDate, UnknownSchema, check_current, downgrade, head_revision, upgrade
from app.settings import get_settings

PROG = "python -m app.migrations"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command")
    forward = commands.add_parser("upgrade", help="to the latest revision (the default)")
    forward.add_argument("revision", nargs="?", default="head", help="a revision id; the latest if left out")
    commands.add_parser("current", help="say which revision the database is at; exit 1 unless the latest")
    back = commands.add_parser("downgrade", help="back to an older revision")
    back.add_argument("revision", help='a revision id, "-1" for one step back, or "base" for none')
    args = parser.parse_args(argv)
    # What the migrations log is what this command has to say.
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)

    try:
        database_url = get_settings().database_url
    except ValidationError as exc:
        problems = "; ".join(
            f"TRAINQ_{str(e['loc'][0]).upper()}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        print(f"{PROG}: invalid settings: {problems}", file=sys.stderr)
        return 2
    try:
        check_database(url=database_url)
        engine = make_engine(database_url)
        try:
            return _run(args, engine)
        finally:
            engine.dispose()
    except (DamagedDatabase, SchemaOutOfDate, UnknownSchema, CommandError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
    except SQLAlchemyError as exc:
        # The driver's first line says what failed (no such host, password refused, ...).
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"{PROG}: cannot use the database in TRAINQ_DATABASE_URL: {reason}", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace, engine: Engine) -> int:
    if args.command == "downgrade":
        downgrade(engine, args.revision)
    elif args.command == "current":
        try:
            check_current(engine)
        except SchemaOutOfDate as exc:
            print(exc)
            return 1
        where = engine.url.render_as_string(hide_password=True)
        print(f"the database {where} is at the latest schema revision, {head_revision()}")
    else:
        upgrade(engine, revision=getattr(args, "revision", "head"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
