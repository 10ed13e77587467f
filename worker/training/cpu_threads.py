"""A training process's CPU threads: its share of the host (worker/cpu_share.py), set before any work.

Both pools get the share. The inter-op pool can only be sized before it first runs an operation,
so this is the first thing a training process (each torchrun rank) does. DataLoader worker
processes need nothing here: torch's worker loop sets one intra-op thread in each itself
(tests/training/test_cpu_threads.py holds it to that).
"""

from __future__ import annotations

import logging

import torch

from app.contract import CpuThreads

logger = logging.getLogger(__name__)


def use_cpu_threads(threads: int) -> CpuThreads:
    """Size torch's intra-op and inter-op pools to `threads`; returns what is then in effect."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError as exc:
        # Already sized, or already used: the process keeps the pool it has, and reports it.
        logger.warning("inter-op threads stay at %d: %s", torch.get_num_interop_threads(), exc)
    return CpuThreads(intra_op=torch.get_num_threads(), inter_op=torch.get_num_interop_threads())
