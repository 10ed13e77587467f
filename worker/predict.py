"""Classify images with a trained model: `from worker import predict`.

    predictions = predict("epoch-0007.pt", ["cat.jpg", "dog.png"], top_k=3)
    predictions[0].class_name, predictions[0].probability, predictions[0].top

Imported only on demand: `import worker` (the claim loop) stays free of torch.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from app.contract import EXPORT_FILE_NAMES
from worker.training.checkpoint import load_model
from worker.training.export import load_exported
from worker.training.inference import ImageInput

__all__ = ["Prediction", "load", "load_exported", "load_model", "predict"]


@dataclass(frozen=True)
class Prediction:
    """One image's class: the most probable one, and the `top_k` most probable, best first."""

    class_name: str
    probability: float
    top: list[tuple[str, float]]


def load(path: str | Path, device: str = "cpu") -> nn.Module:
    """A model with class_names and preprocess from a checkpoint (.pt) or a model.safetensors export."""
    if Path(path).suffix == Path(EXPORT_FILE_NAMES["safetensors"]).suffix:
        return load_exported(path, device)
    return load_model(path, device)


def predict(
    model_or_checkpoint_path: nn.Module | str | Path,
    images: ImageInput | Iterable[ImageInput],
    *,
    top_k: int = 1,
    batch_size: int = 64,
    device: str = "cpu",
) -> list[Prediction]:
    """The class of each image (a PIL image or an image file's path), in the order given.

    The model is a checkpoint's or model.safetensors' path, or a model from load_model or
    load_exported (it needs their `class_names` and `preprocess`)."""
    if isinstance(model_or_checkpoint_path, str | Path):
        model = load(model_or_checkpoint_path, device)
    else:
        model = model_or_checkpoint_path.to(device).eval()
    class_names: Sequence[str] | None = getattr(model, "class_names", None)
    preprocess = getattr(model, "preprocess", None)
    if class_names is None or preprocess is None:
        raise TypeError(
            "the model has no class_names and preprocess: load it with worker.load_model "
            "or worker.predict.load_exported, or pass the checkpoint's path"
        )
    if top_k < 1 or batch_size < 1:
        raise ValueError(f"top_k and batch_size must be at least 1, not {top_k} and {batch_size}")
    listed = [images] if isinstance(images, Image.Image | str | Path) else list(images)
    k = min(top_k, len(class_names))
    predictions: list[Prediction] = []
    for start in range(0, len(listed), batch_size):
        chunk = listed[start : start + batch_size]
        batch = torch.stack([preprocess(image) for image in chunk]).to(device)
        with torch.inference_mode():
            probabilities = model(batch).float().softmax(dim=1)
        values, indices = probabilities.topk(k, dim=1)
        for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True):
            top = [(class_names[i], p) for i, p in zip(row_indices, row_values, strict=True)]
            predictions.append(Prediction(class_name=top[0][0], probability=top[0][1], top=top))
    return predictions


class _CallableModule(types.ModuleType):
    # `from worker import predict` gives this module (Python prefers the submodule to a
    # package attribute of the same name), so calling it must mean calling predict().
    __call__ = staticmethod(predict)


sys.modules[__name__].__class__ = _CallableModule
