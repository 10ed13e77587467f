"""The schema's revisions, oldest first: 0001_initial_schema.py is trainq 0.1.0's schema.

A change to app/models.py's tables comes with a revision here, named NNNN_what_changes.py,
whose `revision` is the next number and whose `down_revision` is the last one's.
Alter a table inside `op.batch_alter_table(...)`: SQLite alters most things by copying
the table, which batch mode does for it (and PostgreSQL runs the plain ALTER).
tests/app/test_migrations.py fails until upgrade and downgrade give the models' schema.
"""
