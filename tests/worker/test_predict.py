"""`from worker import predict`: class names for PIL images and image files, from any saved model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from app.contract import EvalTransform
from tests.support.models import BRIGHTNESS_CLASSES, BRIGHTNESS_SIZE, brightness_mlp, write_model_checkpoint
from worker.training.checkpoint import load_model
from worker.training.export import export_model

SIZES = {"num_classes": 2, "in_channels": 1, "image_size": BRIGHTNESS_SIZE}
TRANSFORM = EvalTransform(
    image_size=BRIGHTNESS_SIZE, resize_size=BRIGHTNESS_SIZE, channels=1, mean=None, std=None
)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return write_model_checkpoint(
        brightness_mlp(),
        tmp_path / "checkpoints",
        model_name="mlp",
        sizes=SIZES,
        class_names=BRIGHTNESS_CLASSES,
        eval_transform=TRANSFORM.model_dump(),
        model_args=SIZES,
    )


def _images() -> list[Image.Image]:
    # RGB and larger than the model's input: predict converts and resizes them.
    return [Image.new("RGB", (12, 9), color) for color in ("white", "black", (250, 250, 250))]


def test_predict_names_the_class_of_pil_images(checkpoint: Path) -> None:
    from worker import predict

    predictions = predict(checkpoint, _images())
    assert [p.class_name for p in predictions] == ["bright", "dark", "bright"]
    assert all(p.probability > 0.99 for p in predictions)
    assert [p.top for p in predictions] == [[(p.class_name, p.probability)] for p in predictions]


def test_predict_reads_image_files_in_batches_with_the_top_k(checkpoint: Path, tmp_path: Path) -> None:
    from worker import predict

    paths = []
    for index, image in enumerate(_images()):
        paths.append(tmp_path / f"image-{index}.png")
        image.save(paths[-1])
    predictions = predict(load_model(checkpoint), [str(paths[0]), *paths[1:]], top_k=5, batch_size=2)
    assert [p.class_name for p in predictions] == ["bright", "dark", "bright"]
    for prediction in predictions:
        assert [name for name, _ in prediction.top] == sorted(
            BRIGHTNESS_CLASSES, key=lambda name: name != prediction.class_name
        )
        assert sum(probability for _, probability in prediction.top) == pytest.approx(1)
    assert predict(checkpoint, paths[1])[0].class_name == "dark"


def test_predict_takes_a_model_safetensors_export(tmp_path: Path) -> None:
    from worker.predict import predict

    (exported, *_) = export_model(
        brightness_mlp(),
        class_names=BRIGHTNESS_CLASSES,
        eval_transform=TRANSFORM,
        model_name="mlp",
        model_args=SIZES,
        formats=["safetensors"],
        out_dir=tmp_path,
    )
    assert [p.class_name for p in predict(exported.path, _images())] == ["bright", "dark", "bright"]


def test_a_model_without_class_names_is_refused_with_how_to_load_one() -> None:
    from worker import predict

    with pytest.raises(TypeError, match="load_model"):
        predict(brightness_mlp(), _images())


def test_importing_worker_still_does_not_import_torch() -> None:
    check = (
        "import sys, worker\n"
        "assert 'torch' not in sys.modules, 'import worker imported torch'\n"
        "from worker import predict\n"
        "assert callable(predict) and predict.Prediction\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True)
