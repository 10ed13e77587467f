"""The fake dataset's peak memory stays within what the bound in app.hyperparameters promises.

Measured in a fresh interpreter: peak RSS is a high-water mark for the whole process,
and whatever an earlier test allocated would hide the growth being measured.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.fake_data import fake_data_peak_bytes
from app.hyperparameters import Hyperparameters
from tests.support.processes import REPO_ROOT

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
# A few hundred MiB of uint8 images, served in batches large enough to count; many classes,
# since the peak must not grow with them.
REQUEST: dict[str, Any] = {
    "dataset": "fake",
    "fake_samples": 6000,
    "fake_channels": 3,
    "image_size": 128,
    "fake_num_classes": 1000,
    "batch_size": 256,
}


def _status_bytes(field: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in {STATUS}")


def _serve_one_epoch(hp: Hyperparameters) -> None:
    import torch

    from worker.training.data import build_data

    data = build_data(hp, Path("/nonexistent"), torch.device("cpu"))
    for loader in (data.train, data.val):
        # What the loop picks for convolutional models on CUDA, and the costliest: one more copy a batch.
        loader.memory_format = torch.channels_last
        for _ in loader:  # holds each batch while the next is made, as the training loop does
            pass


def print_peak_growth() -> None:
    """In the child: print how far peak RSS rose above resident memory while building and serving."""
    import torch

    torch.set_num_threads(1)
    _serve_one_epoch(Hyperparameters(**{**REQUEST, "fake_samples": 100}))  # pages in the code it runs
    CLEAR_REFS.write_text("5")  # resets the high-water mark to what is resident now (see proc(5))
    before = _status_bytes("VmRSS")
    _serve_one_epoch(Hyperparameters(**REQUEST))
    print(_status_bytes("VmHWM") - before)


@pytest.mark.skipif(not CLEAR_REFS.exists(), reason="measures peak memory through Linux's /proc")
def test_building_and_serving_fake_data_stays_within_the_peak_the_bound_counts() -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"from {__name__} import print_peak_growth; print_peak_growth()"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    growth = int(result.stdout.split()[-1])

    samples, channels, size = REQUEST["fake_samples"], REQUEST["fake_channels"], REQUEST["image_size"]
    images_bytes = samples * channels * size**2
    bound = fake_data_peak_bytes(
        samples=samples, channels=channels, image_size=size, batch_size=REQUEST["batch_size"]
    )
    assert growth >= images_bytes  # the measurement sees torch's allocations
    assert growth <= bound, (
        f"peak grew {growth / images_bytes:.2f}x the images' bytes, bound {bound / images_bytes:.2f}x"
    )
