"""From a folder of images to a model to ship, through the real API and a real worker: the
layouts a user brings, what the job reports, and what comes out of it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnxruntime
import pytest
import safetensors.torch
import torch

from tests.e2e.conftest import Service
from tests.support.images import make_image_folder, write_truncated_jpeg
from worker.predict import load_model, predict
from worker.training.models import build_architecture

CLASSES = ["circle", "square", "triangle"]
PER_CLASS = 12
TRAINING = {"model": "small_cnn", "image_size": 32, "batch_size": 16, "num_workers": 0}


def data_dir(service: Service) -> Path:
    return service.state_dir / "data"


@pytest.fixture(scope="module")
def shapes_job(live: Service) -> dict:
    """A train/val/test folder of shapes, trained to the end with every export."""
    make_image_folder(data_dir(live) / "shapes", per_class=PER_CLASS, size=40)
    job_id = live.submit(
        "shapes",
        dataset="imagefolder",
        dataset_path="shapes",
        epochs=6,
        learning_rate=3e-3,
        export=["safetensors", "torchscript", "onnx"],
        **TRAINING,
    )
    job = live.wait_until_final(job_id, timeout_s=300)
    assert job["status"] == "succeeded", job
    return job


def test_the_job_reports_its_classes_splits_and_scores_on_the_test_split(shapes_job: dict) -> None:
    info = shapes_job["dataset_info"]
    assert info["classes"] == CLASSES
    assert (info["layout"], info["train_samples"], info["val_samples"], info["test_samples"]) == (
        "split_folders",
        3 * PER_CLASS,
        3 * PER_CLASS,
        3 * PER_CLASS,
    )
    assert shapes_job["stop_reason"] == "completed"
    test = shapes_job["test_metrics"]
    assert test["epoch"] == shapes_job["best_epoch"]
    assert test["accuracy"] >= 0.9, test
    assert sum(map(sum, test["confusion_matrix"])) == 3 * PER_CLASS
    assert [row["class"] for row in test["per_class"]] == CLASSES
    assert [row["support"] for row in test["per_class"]] == [PER_CLASS] * 3
    assert shapes_job["val_metrics"]["epoch"] == shapes_job["best_epoch"]


def test_train_and_test_without_val_carve_val_from_train_and_score_test(live: Service) -> None:
    make_image_folder(data_dir(live) / "no-val", splits=("train", "test"), per_class=10, size=32)
    job = live.wait_until_final(
        live.submit("no val", dataset="imagefolder", dataset_path="no-val", epochs=1, **TRAINING)
    )
    assert job["status"] == "succeeded", job
    info = job["dataset_info"]
    assert (info["train_samples"] + info["val_samples"], info["test_samples"]) == (30, 30)
    assert info["val_samples"] == 6  # 20 % of each class's 10 images
    assert sum(map(sum, job["test_metrics"]["confusion_matrix"])) == 30


def test_a_folder_beside_train_that_is_not_a_split_fails_the_job_naming_it(live: Service) -> None:
    root = make_image_folder(data_dir(live) / "junk-beside", splits=("train", "junk"), per_class=2)
    assert (root / "junk").is_dir()
    job = live.wait_until_final(
        live.submit("junk", dataset="imagefolder", dataset_path="junk-beside", epochs=1, **TRAINING)
    )
    assert (job["status"], job["error"]["reason"], job["stop_reason"]) == ("failed", "data_error", "failed")
    assert "junk" in job["error"]["message"]


def test_a_corrupt_jpeg_fails_the_job_naming_it_or_is_skipped_when_asked(live: Service) -> None:
    root = make_image_folder(data_dir(live) / "one-bad", splits=("train", "val"), per_class=6)
    write_truncated_jpeg(root / "train" / "square" / "broken.jpg")
    failed = live.wait_until_final(
        live.submit(
            "bad", dataset="imagefolder", dataset_path="one-bad", epochs=1, cache="memory", **TRAINING
        )
    )
    assert (failed["status"], failed["error"]["reason"]) == ("failed", "data_error")
    assert "train/square/broken.jpg" in failed["error"]["message"]

    skipped = live.wait_until_final(
        live.submit(
            "skip", dataset="imagefolder", dataset_path="one-bad", epochs=1, skip_bad_images=True, **TRAINING
        )
    )
    assert skipped["status"] == "succeeded", skipped
    info = skipped["dataset_info"]
    assert (info["skipped_count"], info["skipped_files"], info["train_samples"]) == (
        1,
        ["train/square/broken.jpg"],
        18,
    )


def download(live: Service, url: str, path: Path) -> Path:
    response = live.http.get(url)
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)
    return path


def test_the_best_checkpoint_predicts_the_test_files_as_the_evaluation_counted(
    live: Service, shapes_job: dict, tmp_path: Path
) -> None:
    best = next(c for c in shapes_job["checkpoints"] if c["is_best"])
    assert best["epoch"] == shapes_job["best_epoch"]
    model = load_model(download(live, best["url"], tmp_path / "best.pt"))
    assert model.class_names == CLASSES
    files = sorted((data_dir(live) / "shapes" / "test").rglob("*.*"))
    predictions = predict(model, files)
    confusion = [[0] * len(CLASSES) for _ in CLASSES]
    for path, prediction in zip(files, predictions, strict=True):
        confusion[CLASSES.index(path.parent.name)][CLASSES.index(prediction.class_name)] += 1
    assert confusion == shapes_job["test_metrics"]["confusion_matrix"]


def test_every_export_downloads_and_predicts_as_the_checkpoint_does(
    live: Service, shapes_job: dict, tmp_path: Path
) -> None:
    exports = {export["format"]: export for export in shapes_job["exports"]}
    assert set(exports) == {"safetensors", "torchscript", "onnx"}
    files = {fmt: download(live, export["url"], tmp_path / export["name"]) for fmt, export in exports.items()}
    for fmt, path in files.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == exports[fmt]["sha256"]
    best = next(c for c in shapes_job["checkpoints"] if c["is_best"])
    model = load_model(download(live, best["url"], tmp_path / "best.pt"))
    images = sorted((data_dir(live) / "shapes" / "test").rglob("*.*"))[:8]
    batch = torch.stack([model.preprocess(image) for image in images])
    with torch.no_grad():
        expected = model(batch)

    weights = safetensors.torch.load_file(files["safetensors"])
    rebuilt = build_architecture("small_cnn", num_classes=3, in_channels=3, image_size=32)
    rebuilt.load_state_dict(weights)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(batch), expected)
        scripted = torch.jit.load(str(files["torchscript"]))(batch)
    torch.testing.assert_close(scripted, expected)
    session = onnxruntime.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    assert float((torch.from_numpy(onnx_logits) - expected).abs().max()) <= 1e-4
    assert (torch.from_numpy(onnx_logits).argmax(1) == expected.argmax(1)).all()
