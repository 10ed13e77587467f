"""Alembic's entry point: runs the revisions on the connection that app.migrations hands over
(config.attributes["connection"]), inside the transaction that connection already holds."""

from __future__ import annotations

from alembic import context

context.configure(
    connection=context.config.attributes["connection"],
    # Revisions alter tables in batch: SQLite can only add a column in place; anything else
    # copies the table, which batch mode does for it.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
