"""What a model needs besides its weights to classify an image: its class names and its preprocess."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from PIL import Image
from torch import Tensor, nn
from torchvision.transforms import v2

from app.contract import EvalTransform

from .transforms import eval_transform

ImageInput: TypeAlias = Image.Image | str | Path


class Preprocess:
    """A PIL image (or the path of an image file) to the CHW float tensor the model expects:
    converted to grayscale or RGB by `channels`, resized as training resized it, then the
    evaluation transform's crop, scaling and normalisation."""

    def __init__(self, transform: EvalTransform, *, square_resize: bool = False) -> None:
        self.transform = transform
        # Checkpoints older than the eval_transform key were trained on images resized to a
        # square (aspect ratio not kept), not resized by their shorter side and then cropped.
        self.square_resize = square_resize
        self._to_input = eval_transform(transform)

    def __call__(self, image: ImageInput) -> Tensor:
        if isinstance(image, str | Path):
            with Image.open(image) as opened:
                return self(opened)
        converted = image.convert("L" if self.transform.channels == 1 else "RGB")
        resized = converted.resize(self._resized_size(converted.size), Image.Resampling.BILINEAR)
        return self._to_input(v2.functional.pil_to_tensor(resized))

    def _resized_size(self, size: tuple[int, int]) -> tuple[int, int]:
        if self.square_resize:
            return self.transform.image_size, self.transform.image_size
        # The shorter side becomes resize_size, rounded as transforms.decode_resized rounds it.
        width, height = size
        scale = self.transform.resize_size / min(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    def __repr__(self) -> str:
        square = ", square_resize=True" if self.square_resize else ""
        return f"Preprocess({self.transform!r}{square})"


def attach_inference(model: nn.Module, class_names: Sequence[str], preprocess: Preprocess) -> nn.Module:
    """`model` with `model.class_names` and `model.preprocess` set, as load_model returns it."""
    # Plain instance attributes rather than nn.Module ones: they stay out of state_dict(), .to()
    # and scripting (a v2 transform is itself an nn.Module and would become a submodule).
    vars(model).update(class_names=list(class_names), preprocess=preprocess)
    return model
