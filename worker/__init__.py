"""trainq's worker: claims queued jobs and trains each in its own process.

`from worker import load_model` rebuilds a trained model from a checkpoint file, and
`from worker import predict` classifies images with one (worker/predict.py).
Both are imported lazily so that `python -m worker` (the supervising process)
does not load torch; only the training processes do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.training.checkpoint import load_model

__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from worker.training.checkpoint import load_model

        return load_model
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
