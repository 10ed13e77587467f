"""start_cost.py --dataset imagefolder: a 600-image JPEG folder from claim to first batch, and its epochs.

Writes the folder itself with PIL (6 classes, train/ + val/ of 80 + 20 images each, 64 px), then runs
small_cnn and mobilenet_v3_small on it with `cache: memory`, batch 32, `--epochs` epochs, and the same
small_cnn job on a tensor dataset of the same shape (`fake`: 600 images, 6 classes, 3x64x64, the same
480/120 split), all in one run on one live service. It prints, per job, claim to first batch and each
epoch's duration (training and validation, from the job's metrics), and the ratios the issue sets:
epoch 1 against the mean of the later epochs, and the image folder's later epochs against the tensor
dataset's (speed = 1 / duration; >= 0.8 wanted).
"""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

CLASSES = 6
TRAIN_PER_CLASS, VAL_PER_CLASS = 80, 20
SIZE = 64
FOLDER = "bench_shapes"
MODELS = ("small_cnn", "mobilenet_v3_small")
FIRST_BATCH_TARGET_S = 2.0
EPOCH_ONE_TARGET = 1.5
TENSOR_SPEED_TARGET = 0.8


def write_folder(data_dir: Path, seed: int = 0) -> Path:
    """data_dir/FOLDER/{train,val}/class_<k>/<n>.jpg: class k is a polygon of k + 3 corners on noise."""
    rng = random.Random(seed)
    root = data_dir / FOLDER
    for split, count in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
        for label in range(CLASSES):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for number in range(count):
                background = tuple(rng.randrange(256) for _ in range(3))
                image = Image.new("RGB", (SIZE, SIZE), background)
                centre, radius = rng.uniform(24, 40), rng.uniform(14, 24)
                start = rng.uniform(0, 6.283)
                corners = [
                    (centre + radius * math.cos(start + k * 6.283 / (label + 3)),
                     centre + radius * math.sin(start + k * 6.283 / (label + 3)))
                    for k in range(label + 3)
                ]  # fmt: skip
                ImageDraw.Draw(image).polygon(corners, fill=tuple(255 - c for c in background))
                image.save(folder / f"{number:03d}.jpg", quality=90)
    return root


def jobs(epochs: int, models: list[str]) -> dict[str, dict[str, Any]]:
    common = {"image_size": SIZE, "batch_size": 32, "epochs": epochs, "seed": 0}
    folder = {"dataset": "imagefolder", "dataset_path": FOLDER, "cache": "memory", **common}
    tensor = {
        "dataset": "fake",
        "fake_samples": CLASSES * (TRAIN_PER_CLASS + VAL_PER_CLASS),
        "fake_num_classes": CLASSES,
        "fake_channels": 3,
        "val_fraction": VAL_PER_CLASS / (TRAIN_PER_CLASS + VAL_PER_CLASS),
        "model": "small_cnn",
        **common,
    }
    return {**{model: {**folder, "model": model} for model in models}, "tensor small_cnn": tensor}


def epoch_seconds(http: httpx.Client, job_id: str) -> list[float]:
    metrics = http.get(f"/jobs/{job_id}/metrics").json()
    return [float(row["duration_seconds"]) for row in metrics]


def report(results: dict[str, list[tuple[float, list[float]]]]) -> None:
    """Medians over the repeats of each job: claim to first batch, epoch 1 / later, and the verdicts."""
    later: dict[str, float] = {}
    for name, runs in results.items():
        first = statistics.median(cost for cost, _ in runs)
        one = statistics.median(epochs[0] for _, epochs in runs)
        later[name] = statistics.median(statistics.mean(epochs[1:]) for _, epochs in runs)
        print(
            f"{name}: claim to first batch {first:.2f} s, epoch 1 {one:.2f} s, later epochs {later[name]:.2f} s, "
            f"epoch 1 / later = {one / later[name]:.2f}x (median of {len(runs)})"
        )
        if name in MODELS:
            print(
                f"target {name} claim to first batch <= {FIRST_BATCH_TARGET_S:.1f} s ({first:.2f} s): "
                f"{'met' if first <= FIRST_BATCH_TARGET_S else 'NOT met'}"
            )
            ratio = one / later[name]
            print(
                f"target {name} epoch 1 <= {EPOCH_ONE_TARGET}x a later epoch ({ratio:.2f}x): "
                f"{'met' if ratio <= EPOCH_ONE_TARGET else 'NOT met'}"
            )
    if "small_cnn" not in later:
        return
    speed = later["tensor small_cnn"] / later["small_cnn"]
    print(
        f"cache: memory later epochs / tensor dataset (speed, small_cnn, same run) = {speed:.2f}x; "
        f"target >= {TENSOR_SPEED_TARGET}x: {'met' if speed >= TENSOR_SPEED_TARGET else 'NOT met'}"
    )
