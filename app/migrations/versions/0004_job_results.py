"""What a job trained on and how it ended: dataset_info, warm_start, stop_reason, best_epoch,
val_metrics, test_metrics and exports on jobs. Jobs made before get what their rows tell: the
stop_reason of a failed or cancelled job, and the epoch of the best checkpoint; a succeeded job's
stop_reason stays null (whether it stopped early is not recorded), as do the rest.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON_COLUMNS = ("dataset_info", "warm_start", "val_metrics", "test_metrics", "exports")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name in JSON_COLUMNS:
            batch.add_column(sa.Column(name, sa.JSON(), nullable=True))
        batch.add_column(sa.Column("stop_reason", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("best_epoch", sa.Integer(), nullable=True))
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String()),
        sa.column("status", sa.String()),
        sa.column("error_reason", sa.String()),
        sa.column("stop_reason", sa.String()),
        sa.column("best_epoch", sa.Integer()),
    )
    checkpoints = sa.table(
        "checkpoints",
        sa.column("job_id", sa.String()),
        sa.column("epoch", sa.Integer()),
        sa.column("is_best", sa.Boolean()),
    )
    # The status column is an enum on PostgreSQL: compared as text, the same SQL runs on both.
    status = sa.cast(jobs.c.status, sa.String())
    stop_reason = sa.case(
        (status == "cancelled", "cancelled"),
        (jobs.c.error_reason == "nan_loss", "nan_loss"),
        (jobs.c.error_reason == "timeout", "time_limit"),
        else_="failed",
    )
    op.execute(jobs.update().where(status.in_(["failed", "cancelled"])).values(stop_reason=stop_reason))
    best = (
        sa.select(sa.func.max(checkpoints.c.epoch))
        .where(checkpoints.c.job_id == jobs.c.id, checkpoints.c.is_best)
        .scalar_subquery()
    )
    op.execute(jobs.update().values(best_epoch=best))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name in (*JSON_COLUMNS, "stop_reason", "best_epoch"):
            batch.drop_column(name)
