"""Image transforms of image-folder jobs, in two stages.

Stage 1, `decode_resized`, decodes a file once to an RGB uint8 tensor whose shorter side is
`resize_size`: what the memory cache keeps, and where every transform below starts.
Stage 2 turns that into a model input: a random crop for training (`augment`), the center
crop for evaluation, then floats in [0, 1] normalised per channel (`normalize`).
`EvalTransform` carries the evaluation half to checkpoints, for inference to repeat it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import v2

from app.contract import EvalTransform
from app.hyperparameters import Augment, Normalize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's reference recipes evaluate at a 224 crop of a 256 resize: the crop keeps 87.5%.
CENTER_CROP_FRACTION = 0.875

Transform = Callable[[Tensor], Tensor]


def resize_size_for(image_size: int) -> int:
    return round(image_size / CENTER_CROP_FRACTION)


def resized(size: tuple[int, int], resize_size: int) -> tuple[int, int]:
    """(width, height) of an image of `size` once its shorter side is `resize_size`."""
    width, height = size
    scale = resize_size / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def decoded_shape(path: Path, resize_size: int) -> tuple[int, int, int]:
    """The shape `decode_resized` gives the file at `path`, from its header alone."""
    with Image.open(path) as image:
        width, height = resized(image.size, resize_size)
    return 3, height, width


def decode_resized(path: Path, resize_size: int) -> Tensor:
    """The image at `path` as a 3xHxW uint8 RGB tensor, its shorter side `resize_size`.

    Decodes the whole file (a truncated one raises OSError here, not later in a batch).
    Grayscale, palette and RGBA images become RGB.
    """
    with Image.open(path) as image:
        size = resized(image.size, resize_size)
        # JPEG: decode at a reduced scale (still at least `size`) when the image is much
        # larger, several times faster than decoding every pixel to throw most away.
        image.draft("RGB", size)
        rgb = image.convert("RGB")
    if rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous()


def _to_model_input(mean: Sequence[float] | None, std: Sequence[float] | None) -> list[v2.Transform]:
    steps: list[v2.Transform] = [v2.ToDtype(torch.float32, scale=True)]
    if mean is not None and std is not None:
        steps.append(v2.Normalize(list(mean), list(std)))
    return steps


def train_transform(
    augment: Augment, image_size: int, mean: Sequence[float] | None, std: Sequence[float] | None
) -> Transform:
    """From `decode_resized`'s output to a training input.

    none: the evaluation crop; light: a random crop of 8-100% of the area at 3/4-4/3 aspect,
    resized to `image_size`, flipped left-right half the time; standard: light plus random
    brightness/contrast/saturation (+-40%) and RandAugment's two random operations.
    """
    steps: list[v2.Transform]
    if augment == "none":
        steps = [v2.CenterCrop(image_size)]
    else:
        steps = [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
        if augment == "standard":
            steps += [v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4), v2.RandAugment()]
    return v2.Compose(steps + _to_model_input(mean, std))


def eval_transform(spec: EvalTransform) -> Transform:
    """From `decode_resized(path, spec.resize_size)`'s output to an evaluation input: deterministic."""
    return v2.Compose([v2.CenterCrop(spec.image_size), *_to_model_input(spec.mean, spec.std)])


def eval_spec(
    normalize: Normalize, image_size: int, dataset_stats: tuple[list[float], list[float]] | None
) -> EvalTransform:
    """The evaluation transform of an image-folder job; `dataset_stats` is the train split's
    (mean, std) per channel, needed for normalize 'dataset' only."""
    mean: list[float] | None
    std: list[float] | None
    if normalize == "imagenet":
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    elif normalize == "dataset":
        if dataset_stats is None:
            raise ValueError("normalize 'dataset' needs the train split's statistics")
        mean, std = dataset_stats
    else:
        mean = std = None
    return EvalTransform(
        image_size=image_size, resize_size=resize_size_for(image_size), channels=3, mean=mean, std=std
    )


def channel_sums(image: Tensor) -> Tensor:
    """A uint8 image's per-channel sums and sums of squares in [0, 1], and its pixel count (7 values):
    kept per image, so the train split's statistics can be summed once the split is known."""
    values = image.reshape(3, -1).to(torch.float64).div_(255.0)
    pixels = torch.tensor([values.shape[1]], dtype=torch.float64)
    return torch.cat([values.sum(dim=1), values.square().sum(dim=1), pixels])


def mean_std(sums: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over images whose `channel_sums` are the rows of `sums`."""
    total = sums.sum(dim=0)
    mean = total[:3] / total[6]
    # A constant channel would divide by zero: floor its std at one grey level.
    std = (total[3:6] / total[6] - mean.square()).clamp_(min=0.0).sqrt_().clamp_(min=1 / 255)
    return [round(v, 6) for v in mean.tolist()], [round(v, 6) for v in std.tolist()]
