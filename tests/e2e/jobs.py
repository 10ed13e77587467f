"""Hyperparameters of the jobs the end-to-end tests submit."""

from __future__ import annotations

from typing import Any

# About a second per epoch on a 2-core machine: long enough to stop in the middle of one.
LONG_JOB: dict[str, Any] = {
    "dataset": "fake",
    "fake_samples": 3000,
    "image_size": 16,
    "batch_size": 32,
    "model": "small_cnn",
}
# Trains in a blink: for tests of the queue rather than of training.
TINY_JOB: dict[str, Any] = {
    "dataset": "fake",
    "fake_samples": 20,
    "image_size": 8,
    "batch_size": 16,
    "model": "mlp",
    "epochs": 1,
}
