"""The statements an engine runs, and the plan the database would choose for one of them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event


@contextmanager
def recorded_statements(engine: Engine) -> Iterator[list[tuple[str, object]]]:
    """Every (statement, parameters) the engine runs inside the block, in order."""
    statements: list[tuple[str, object]] = []

    def record(_conn: object, _cursor: object, statement: str, parameters: object, *_args: object) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def query_plan(engine: Engine, statement: str, parameters: object) -> str:
    """EXPLAIN (PostgreSQL, with sequential scans off: on test-sized tables a scan costs less, and
    what matters is that an index can serve the query) or EXPLAIN QUERY PLAN (SQLite), as text."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET enable_seqscan = off")
            plan = [row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)]
        else:
            plan = [
                row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            ]
    return "\n".join(plan)
