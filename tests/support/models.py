"""Small models with known answers and the checkpoint files that hold them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from worker.training.checkpoint import FORMAT_VERSION, write_checkpoint
from worker.training.models import build_architecture

BRIGHTNESS_CLASSES = ["dark", "bright"]
BRIGHTNESS_SIZE = 4


def brightness_mlp() -> nn.Module:
    """An mlp on 4x4 grayscale images whose answer is known: "bright" for a white image,
    "dark" for a black one (its logits are 10x the mean brightness, and 10x its complement)."""
    model = build_architecture("mlp", num_classes=2, in_channels=1, image_size=BRIGHTNESS_SIZE)
    first, second = model[1], model[3]
    assert isinstance(first, nn.Linear) and isinstance(second, nn.Linear)
    pixels = BRIGHTNESS_SIZE * BRIGHTNESS_SIZE
    with torch.no_grad():
        for layer in (first, second):
            layer.weight.zero_()
            layer.bias.zero_()
        first.weight[0] = 1 / pixels  # hidden 0: mean brightness
        first.weight[1] = -1 / pixels  # hidden 1: 1 - mean brightness
        first.bias[1] = 1
        second.weight[1, 0] = second.weight[0, 1] = 10
    return model.eval()


def write_model_checkpoint(
    model: nn.Module, folder: Path, *, model_name: str, sizes: dict[str, int], **inference: Any
) -> Path:
    """A checkpoint with what load_model reads: `sizes` are num_classes, in_channels and image_size;
    `inference` adds the newer keys (class_names, eval_transform, model_args); without them it is
    laid out as checkpoints were before them."""
    state = {
        "format_version": FORMAT_VERSION,
        "epoch": 1,
        "model_name": model_name,
        **sizes,
        "model_state_dict": model.state_dict(),
        **inference,
    }
    path, _, _ = write_checkpoint(state, folder, epoch=1)
    return path
