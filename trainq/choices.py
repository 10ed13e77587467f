"""The allowed values of the enum-like hyperparameters, as types the command's options take
(typer turns a Literal into a choice) and lists `--help` shows.

The client does not import the server's code; tests/cli/test_choices.py checks these against
app/hyperparameters.py, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Literal, get_args

Dataset = Literal["digits", "fake", "imagefolder", "mnist", "fashion_mnist", "cifar10"]
Model = Literal["mlp", "small_cnn", "resnet18", "mobilenet_v3_small", "efficientnet_b0"]
Optimizer = Literal["adam", "adamw", "sgd"]
LrScheduler = Literal["none", "step", "cosine", "plateau", "onecycle"]
Augment = Literal["none", "light", "standard"]
Precision = Literal["off", "bf16", "fp16"]
Device = Literal["auto", "cpu", "cuda"]
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
# GET /jobs's ?sort= values ("-": descending); the server's default is "-created_at".
JobSort = Literal[
    "-created_at",
    "created_at",
    "-best_val_accuracy",
    "best_val_accuracy",
    "-name",
    "name",
    "-duration",
    "duration",
]
SORTS: tuple[str, ...] = get_args(JobSort)

# Hyperparameter name -> its allowed values.
CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": get_args(Dataset),
    "model": get_args(Model),
    "optimizer": get_args(Optimizer),
    "lr_scheduler": get_args(LrScheduler),
    "augment": get_args(Augment),
    "amp": get_args(Precision),
    "device": get_args(Device),
}
