"""Living with many jobs: tags (and job_tags, one row per tag, for filters), notes, priority with
queue_order_at (the claim's order key), best_val_accuracy (a sortable summary), and sweeps.

Jobs made before get no tags, priority 0, queue_order_at = created_at (first in first out, as
before) and the best val_accuracy of their metric rows.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("base", sa.JSON(), nullable=False),
        sa.Column("space", sa.JSON(), nullable=False),
        sa.Column("max_parallel", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sweeps_owner_created", "sweeps", ["owner", "created_at", "id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("notes", sa.Text(), nullable=True))
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("queue_order_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("best_val_accuracy", sa.Float(), nullable=True))
        batch.add_column(sa.Column("sweep_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key("fk_jobs_sweep_id_sweeps", "sweeps", ["sweep_id"], ["id"])
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("queue_order_at", sa.DateTime(timezone=True)),
        sa.column("best_val_accuracy", sa.Float()),
    )
    metrics = sa.table(
        "epoch_metrics", sa.column("job_id", sa.String()), sa.column("val_accuracy", sa.Float())
    )
    best = (
        sa.select(sa.func.max(metrics.c.val_accuracy)).where(metrics.c.job_id == jobs.c.id).scalar_subquery()
    )
    op.execute(jobs.update().values(queue_order_at=jobs.c.created_at, best_val_accuracy=best))
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("queue_order_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index("ix_jobs_status_queue_order", "jobs", ["status", "queue_order_at", "id"])
    op.create_index("ix_jobs_sweep_status", "jobs", ["sweep_id", "status"])
    op.create_index("ix_jobs_best_val_accuracy", "jobs", ["best_val_accuracy", "id"])
    op.create_table(
        "job_tags",
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "tag"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_job_tags_tag", "job_tags", ["tag", "job_id"])


def downgrade() -> None:
    op.drop_table("job_tags")
    op.drop_index("ix_jobs_best_val_accuracy", "jobs")
    op.drop_index("ix_jobs_sweep_status", "jobs")
    op.drop_index("ix_jobs_status_queue_order", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("fk_jobs_sweep_id_sweeps", type_="foreignkey")
        for name in ("sweep_id", "best_val_accuracy", "queue_order_at", "priority", "notes", "tags"):
            batch.drop_column(name)
    op.drop_table("sweeps")
