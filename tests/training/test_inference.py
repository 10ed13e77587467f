"""load_model's class_names and preprocess, from checkpoints with and without the keys for them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision.transforms.functional as F
from PIL import Image

from app.contract import EvalTransform
from tests.support.models import write_model_checkpoint
from worker.training.checkpoint import load_model
from worker.training.models import build_architecture

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def _photo(width: int = 40, height: int = 30) -> Image.Image:
    """A non-square RGB image, so resizing by the shorter side and cropping both matter."""
    pixels = torch.randint(0, 256, (height, width, 3), generator=torch.Generator().manual_seed(0))
    return Image.fromarray(pixels.to(torch.uint8).numpy(), mode="RGB")


def _by_hand(image: Image.Image, *, resize: tuple[int, int], crop: int, mode: str) -> torch.Tensor:
    """Resize to `resize` (width, height) as training does (PIL, bilinear), center-crop, scale to [0, 1]."""
    resized = F.pil_to_tensor(image.convert(mode).resize(resize, Image.Resampling.BILINEAR))
    height, width = resized.shape[-2:]
    top, left = round((height - crop) / 2), round((width - crop) / 2)
    return resized[:, top : top + crop, left : left + crop].float() / 255


def _checkpoint(folder: Path, channels: int, **inference: object) -> Path:
    sizes = {"num_classes": 3, "in_channels": channels, "image_size": 16}
    model = build_architecture("small_cnn", **sizes)
    return write_model_checkpoint(model, folder, model_name="small_cnn", sizes=sizes, **inference)


def test_load_model_exposes_the_checkpoints_class_names_and_eval_transform(tmp_path: Path) -> None:
    transform = EvalTransform(image_size=16, resize_size=20, channels=3, mean=MEAN, std=STD)
    path = _checkpoint(
        tmp_path,
        3,
        class_names=["cat", "dog", "eel"],
        eval_transform=transform.model_dump(),
        model_args={"num_classes": 3, "in_channels": 3, "image_size": 16},
    )
    model = load_model(path)
    assert model.class_names == ["cat", "dog", "eel"]
    assert not model.training
    image = _photo()
    expected = (
        _by_hand(image, resize=(27, 20), crop=16, mode="RGB") - torch.tensor(MEAN)[:, None, None]
    ) / torch.tensor(STD)[:, None, None]
    tensor = model.preprocess(image)
    assert tensor.shape == (3, 16, 16)
    assert tensor.dtype == torch.float32
    torch.testing.assert_close(tensor, expected, atol=1e-6, rtol=0)
    assert model(tensor[None]).shape == (1, 3)
    # The class names are plain attributes: nothing of them reaches the weights.
    assert set(model.state_dict()) == set(build_architecture("small_cnn", 3, 3, 16).state_dict())


def test_preprocess_converts_to_grayscale_and_reads_image_files(tmp_path: Path) -> None:
    transform = EvalTransform(image_size=16, resize_size=16, channels=1, mean=None, std=None)
    path = _checkpoint(tmp_path, 1, class_names=["a", "b", "c"], eval_transform=transform.model_dump())
    image_file = tmp_path / "photo.png"
    _photo().save(image_file)
    preprocess = load_model(path).preprocess
    expected = _by_hand(_photo(), resize=(21, 16), crop=16, mode="L")
    torch.testing.assert_close(preprocess(image_file), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(preprocess(str(image_file)), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_a_checkpoint_from_before_the_inference_keys_still_loads(tmp_path: Path, channels: int) -> None:
    model = load_model(_checkpoint(tmp_path, channels))
    assert model.class_names == ["0", "1", "2"]
    tensor = model.preprocess(_photo())
    # As training transformed images then: a square resize without normalisation.
    mode = "L" if channels == 1 else "RGB"
    torch.testing.assert_close(
        tensor, _by_hand(_photo(), resize=(16, 16), crop=16, mode=mode), atol=1e-6, rtol=0
    )
    assert model(tensor[None]).shape == (1, 3)
