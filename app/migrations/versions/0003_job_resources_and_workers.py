"""Job resources (devices, device_kind, labels; job_labels) and the workers table.

A job now says how many devices it needs and which labels its worker must carry; jobs made
before ask for what every job got then: one device, no labels. device_kind copies each job's
`device` hyperparameter into a column that a claim can compare. Workers register in `workers`
and renew their row with a heartbeat.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # With server defaults, SQLite adds these in place (no copy of the table) and old rows get them.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("devices", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("device_kind", sa.String(length=8), nullable=False, server_default="auto"))
        batch.add_column(sa.Column("labels", sa.JSON(), nullable=False, server_default="[]"))
    jobs = sa.table("jobs", sa.column("hyperparameters", sa.JSON()), sa.column("device_kind", sa.String()))
    device = jobs.c.hyperparameters["device"].as_string()  # json_extract on SQLite, ->> on PostgreSQL
    op.execute(jobs.update().where(device.in_(["cpu", "cuda"])).values(device_kind=device))

    op.create_table(
        "job_labels",
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("label", sa.String(length=63), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "label"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("cuda_devices", sa.Integer(), nullable=False),
        sa.Column("cpu_devices", sa.Integer(), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("live_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_workers_live_until", "workers", ["live_until"])


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_table("job_labels")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("labels")
        batch.drop_column("device_kind")
        batch.drop_column("devices")
