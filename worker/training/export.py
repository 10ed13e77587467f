"""Deployable files of a trained model: its weights with what inference needs, TorchScript, ONNX.

Every file is written like a checkpoint (temporary name, fsync, rename), so a reader never
sees half of one. `load_exported` rebuilds the model from model.safetensors alone.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import safetensors
import safetensors.torch
import torch
from torch import Tensor, nn

from app.contract import EXPORT_FILE_NAMES, EvalTransform, ExportFormat

from .checkpoint import write_atomically
from .errors import ConfigError, ExportError
from .inference import Preprocess, attach_inference
from .models import build_architecture
from .reports import ExportInfo

logger = logging.getLogger(__name__)

INPUT_NAME = "input"  # the ONNX graph's input (N, C, H, W) and output (N, classes)
OUTPUT_NAME = "logits"
ONNX_OPSET = 17
ONNX_MAX_ABS_DIFF = 1e-4
# Traced with one batch size and checked with another, so a batch size baked into the graph shows.
TRACE_BATCH, CHECK_BATCH = 2, 3


@dataclass(frozen=True)
class ExportMetadata:
    """What an exported file carries besides weights; stored as strings (safetensors metadata,
    TorchScript extra files, ONNX metadata_props)."""

    model_name: str
    model_args: dict[str, int]  # build_architecture's: num_classes, in_channels, image_size
    class_names: list[str]  # output i is class_names[i]
    eval_transform: EvalTransform

    def to_strings(self) -> dict[str, str]:
        return {
            "model_name": self.model_name,
            "model_args": json.dumps(self.model_args),
            "class_names": json.dumps(self.class_names),
            "eval_transform": self.eval_transform.model_dump_json(),
        }

    @classmethod
    def from_strings(cls, metadata: Mapping[str, str]) -> ExportMetadata:
        return cls(
            model_name=metadata["model_name"],
            model_args=json.loads(metadata["model_args"]),
            class_names=json.loads(metadata["class_names"]),
            eval_transform=EvalTransform.model_validate_json(metadata["eval_transform"]),
        )


def export_model(
    model: nn.Module,
    *,
    class_names: Sequence[str],
    eval_transform: EvalTransform,
    model_name: str,
    model_args: Mapping[str, int],
    formats: Iterable[ExportFormat],
    out_dir: Path,
) -> tuple[ExportInfo, ...]:
    """Write `model` into `out_dir` in each of `formats` (model.safetensors, model.pt, model.onnx)
    and describe the files, in the order of `formats`.

    `model` may be on any device, compiled in place or in channels_last: what is exported is a
    fresh CPU copy of `model_name`'s architecture (built from `model_args`, as checkpoints
    store them) holding its weights, in eval mode. Raises ExportError when onnxruntime is
    installed and the ONNX file's logits differ from PyTorch's by more than ONNX_MAX_ABS_DIFF.
    """
    args = dict(model_args)
    plain = build_architecture(model_name, **args)
    plain.load_state_dict(model.state_dict())
    plain.eval()
    metadata = ExportMetadata(model_name, args, list(class_names), eval_transform)
    writers: dict[ExportFormat, Callable[[nn.Module, ExportMetadata], bytes]] = {
        "safetensors": _safetensors_bytes,
        "torchscript": _torchscript_bytes,
        "onnx": _onnx_bytes,
    }
    exports = []
    for export_format in dict.fromkeys(formats):
        content = writers[export_format](plain, metadata)
        name = EXPORT_FILE_NAMES[export_format]
        path, size, sha256 = write_atomically(out_dir, name, _writing(content))
        logger.info("exported %s (%d bytes)", path, size)
        exports.append(ExportInfo(name=name, format=export_format, path=path, size_bytes=size, sha256=sha256))
    return tuple(exports)


def load_exported(path: str | Path, map_location: str = "cpu") -> nn.Module:
    """The model from a model.safetensors that export_model wrote, in eval() mode, with
    `class_names` and `preprocess` attached as load_model attaches them."""
    with safetensors.safe_open(str(path), framework="pt") as file:
        metadata = ExportMetadata.from_strings(file.metadata() or {})
    model = build_architecture(metadata.model_name, **metadata.model_args)
    model.load_state_dict(safetensors.torch.load_file(str(path)))
    attach_inference(model, metadata.class_names, Preprocess(metadata.eval_transform))
    return model.to(map_location).eval()


def _writing(content: bytes) -> Callable[[BinaryIO], None]:
    def write(file: BinaryIO) -> None:
        file.write(content)

    return write


def example_batch(model_args: Mapping[str, int], batch_size: int) -> Tensor:
    """Seeded random inputs of the shape the model takes."""
    shape = (batch_size, model_args["in_channels"], model_args["image_size"], model_args["image_size"])
    return torch.rand(shape, generator=torch.Generator().manual_seed(0))


def _safetensors_bytes(model: nn.Module, metadata: ExportMetadata) -> bytes:
    # Copies: safetensors refuses views into a larger storage.
    tensors = {key: value.detach().contiguous().clone() for key, value in model.state_dict().items()}
    return safetensors.torch.save(tensors, metadata=metadata.to_strings())


def _torchscript_bytes(model: nn.Module, metadata: ExportMetadata) -> bytes:
    # Traced rather than scripted: the torchvision models are not all scriptable; the networks are
    # free of data-dependent control flow, and the trace is checked against the model (check_trace).
    traced = torch.jit.trace(model, example_batch(metadata.model_args, TRACE_BATCH))
    buffer = io.BytesIO()
    extra_files = {f"{key}.txt": value for key, value in metadata.to_strings().items()}
    torch.jit.save(traced, buffer, _extra_files=extra_files)
    return buffer.getvalue()


def check_exportable(formats: Iterable[ExportFormat]) -> None:
    """Raise ConfigError now, before any training, if a format asked for cannot be written here."""
    if "onnx" in formats:
        _import_onnx()


def _import_onnx() -> ModuleType:
    try:
        import onnx
    except ImportError:
        raise ConfigError(
            'the "onnx" export needs the onnx package: install trainq[export] on the worker, '
            'or leave "onnx" out of export'
        ) from None
    return onnx


def _onnx_bytes(model: nn.Module, metadata: ExportMetadata) -> bytes:
    onnx = _import_onnx()
    buffer = io.BytesIO()
    with torch.no_grad():
        # The TorchScript-based exporter: it needs neither onnxscript nor torch.export.
        torch.onnx.export(
            model,
            (example_batch(metadata.model_args, TRACE_BATCH),),
            buffer,  # type: ignore[arg-type]  # the legacy exporter writes to any binary file
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    graph = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(graph, metadata.to_strings())
    content = graph.SerializeToString()
    _check_onnx(content, model, example_batch(metadata.model_args, CHECK_BATCH))
    return content


def _check_onnx(content: bytes, model: nn.Module, batch: Tensor) -> None:
    try:
        import onnxruntime
    except ImportError:
        logger.warning("onnxruntime is not installed: the ONNX export is not checked against the model")
        return
    session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
    (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})
    with torch.no_grad():
        expected = model(batch)
    difference = (torch.from_numpy(logits) - expected).abs().max().item()
    if not difference <= ONNX_MAX_ABS_DIFF:
        raise ExportError(
            f"the ONNX export's logits differ from the PyTorch model's by up to {difference:.3g} "
            f"(at most {ONNX_MAX_ABS_DIFF} allowed); export without onnx, or report the model"
        )
    logger.info("ONNX export checked on a batch of %d: max abs diff %.3g", len(batch), difference)
