"""export_model: every format written whole, loadable, and computing what the model computes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime
import pytest
import safetensors
import safetensors.torch
import torch
from torch import nn

from app.contract import EvalTransform
from worker.training import export
from worker.training.errors import ExportError
from worker.training.export import export_model, load_exported
from worker.training.models import build_architecture
from worker.training.reports import ExportInfo

CLASSES = ["ant", "bee", "cat", "dog", "eel"]
ALL_FORMATS: list[export.ExportFormat] = ["safetensors", "torchscript", "onnx"]
BATCH = 5  # neither of the batch sizes export_model traces and checks with
MAX_ABS_DIFF = 1e-4


@dataclass(frozen=True)
class Exported:
    model: nn.Module
    model_name: str
    model_args: dict[str, int]
    eval_transform: EvalTransform
    files: dict[str, ExportInfo]  # by format

    def batch(self) -> torch.Tensor:
        # Inputs like those the batch norm statistics came from: far outside them, activations grow
        # until float32 alone (PyTorch's own, against float64) is off by more than MAX_ABS_DIFF.
        size = self.model_args["image_size"]
        shape = (BATCH, self.model_args["in_channels"], size, size)
        return torch.rand(shape, generator=torch.Generator().manual_seed(1))

    def logits(self) -> torch.Tensor:
        with torch.no_grad():
            return self.model(self.batch())


def _export(model_name: str, channels: int, size: int, out_dir: Path) -> Exported:
    torch.manual_seed(0)
    model_args = {"num_classes": len(CLASSES), "in_channels": channels, "image_size": size}
    model = build_architecture(model_name, **model_args)
    _settle_batch_norm(model, model_args)
    transform = EvalTransform(image_size=size, resize_size=size + 4, channels=channels, mean=None, std=None)
    files = export_model(
        model,
        class_names=CLASSES,
        eval_transform=transform,
        model_name=model_name,
        model_args=model_args,
        formats=ALL_FORMATS,
        out_dir=out_dir,
    )
    return Exported(model, model_name, model_args, transform, {info.format: info for info in files})


def _settle_batch_norm(model: nn.Module, model_args: dict[str, int]) -> None:
    """Running statistics of real activations, as training leaves them: with the initial ones
    (mean 0, variance 1) mobilenet's logits are ~1e-10 and the same for every image."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a plain average over the batches below
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(
                torch.rand(16, model_args["in_channels"], model_args["image_size"], model_args["image_size"])
            )
    model.eval()


@pytest.fixture(
    scope="module",
    params=[("small_cnn", 1, 16), ("mobilenet_v3_small", 3, 32)],
    ids=["small_cnn", "mobilenet_v3_small"],
)
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return _export(*request.param, tmp_path_factory.mktemp("exports"))


def test_each_format_is_described_by_its_name_path_size_and_sha256(exported: Exported) -> None:
    names = {fmt: info.name for fmt, info in exported.files.items()}
    assert names == {"safetensors": "model.safetensors", "torchscript": "model.pt", "onnx": "model.onnx"}
    for info in exported.files.values():
        assert info.path.is_absolute()
        assert info.path.name == info.name
        assert info.size_bytes == info.path.stat().st_size
        assert info.sha256 == hashlib.sha256(info.path.read_bytes()).hexdigest()
    folder = exported.files["onnx"].path.parent
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "model.pt", "model.safetensors"]


def test_safetensors_loads_strictly_into_the_architecture_and_carries_the_metadata(
    exported: Exported,
) -> None:
    path = exported.files["safetensors"].path
    model = build_architecture(exported.model_name, **exported.model_args)
    model.load_state_dict(safetensors.torch.load_file(path), strict=True)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(exported.batch()), exported.logits())
    with safetensors.safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    assert json.loads(metadata["class_names"]) == CLASSES
    assert EvalTransform.model_validate_json(metadata["eval_transform"]) == exported.eval_transform
    assert metadata["model_name"] == exported.model_name
    assert json.loads(metadata["model_args"]) == exported.model_args


def test_load_exported_rebuilds_the_model_from_model_safetensors_alone(exported: Exported) -> None:
    model = load_exported(exported.files["safetensors"].path)
    assert not model.training
    assert model.class_names == CLASSES
    assert model.preprocess.transform == exported.eval_transform
    with torch.no_grad():
        assert torch.equal(model(exported.batch()), exported.logits())


def test_torchscript_gives_the_models_logits(exported: Exported) -> None:
    scripted = torch.jit.load(exported.files["torchscript"].path)
    with torch.no_grad():
        logits = scripted(exported.batch())
    expected = exported.logits()
    assert torch.equal(logits.argmax(dim=1), expected.argmax(dim=1))
    assert (logits - expected).abs().max().item() <= MAX_ABS_DIFF


def test_onnx_has_a_dynamic_batch_and_gives_the_models_logits(exported: Exported) -> None:
    path = exported.files["onnx"].path
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(["logits"], {"input": exported.batch().numpy()})
    logits, expected = torch.from_numpy(output), exported.logits()
    assert logits.shape == (BATCH, len(CLASSES))
    assert torch.equal(logits.argmax(dim=1), expected.argmax(dim=1))
    assert (logits - expected).abs().max().item() <= MAX_ABS_DIFF
    properties = {prop.key: prop.value for prop in onnx.load(path).metadata_props}
    assert json.loads(properties["class_names"]) == CLASSES


def test_an_onnx_file_that_computes_other_logits_is_refused_and_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No real export differs by more than the tolerance: a negative one makes any difference too much.
    monkeypatch.setattr(export, "ONNX_MAX_ABS_DIFF", -1.0)
    with pytest.raises(ExportError, match="ONNX export's logits differ"):
        _export("small_cnn", 1, 8, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model.safetensors"]


def test_only_the_formats_asked_for_are_written(tmp_path: Path) -> None:
    model = build_architecture("small_cnn", num_classes=2, in_channels=1, image_size=8)
    files = export_model(
        model,
        class_names=["a", "b"],
        eval_transform=EvalTransform(image_size=8, resize_size=8, channels=1, mean=None, std=None),
        model_name="small_cnn",
        model_args={"num_classes": 2, "in_channels": 1, "image_size": 8},
        formats=["safetensors"],
        out_dir=tmp_path / "out",
    )
    assert [info.name for info in files] == ["model.safetensors"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model.safetensors"]
