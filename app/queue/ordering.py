"""The order in which queued jobs are claimed: higher priority first, first in first out within a
priority, and every waiting job gaining priority with age so that none starves.

A job of priority p submitted at t has the effective priority p + (now - t) / PRIORITY_AGING_S.
Ordering by that, descending, is ordering by t - p * PRIORITY_AGING_S ascending, which does not
change while the job waits: that is its queue_order_at column, indexed with the status, so a
claim stays one indexed statement however many jobs wait.
"""

from __future__ import annotations

from datetime import datetime, timedelta

PRIORITY_AGING_S = 600.0  # a waiting job gains one priority level per 10 minutes


def queue_order_at(created_at: datetime, priority: int) -> datetime:
    """The claim's order key of a job created at `created_at` with `priority`."""
    return created_at - timedelta(seconds=priority * PRIORITY_AGING_S)
