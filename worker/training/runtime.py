"""Where and how a run executes: device, mixed precision, seeds and RNG state."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Literal

import numpy as np
import torch

from .errors import ConfigError

Precision = Literal["fp32", "bf16", "fp16"]
Autocast = Callable[[], AbstractContextManager[Any]]
_PRECISION: dict[str, Precision] = {"off": "fp32", "bf16": "bf16", "fp16": "fp16"}
_DTYPE: dict[Precision, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(requested: Literal["auto", "cpu", "cuda"]) -> torch.device:
    """The `device` hyperparameter made concrete; "auto" prefers CUDA."""
    cuda = torch.cuda.is_available()
    if requested == "cuda" and not cuda:
        raise ConfigError(
            'device "cuda" was requested but this worker has no usable CUDA GPU; use "auto" or "cpu"'
        )
    if requested == "cpu" or not cuda:
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def resolve_precision(amp: Literal["off", "bf16", "fp16"], device: torch.device) -> Precision:
    precision = _PRECISION[amp]
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("amp 'fp16' needs CUDA; use bf16 on CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"amp 'bf16' is not supported by {torch.cuda.get_device_name(device)}; use fp16")
    return precision


def autocast_factory(device: torch.device, precision: Precision) -> Autocast:
    """A fresh autocast context per use; a disabled one for fp32, so the loop has no AMP branches."""
    return functools.partial(
        torch.autocast, device.type, dtype=_DTYPE[precision], enabled=precision != "fp32"
    )


def make_grad_scaler(device: torch.device, precision: Precision) -> torch.amp.GradScaler:
    # Only fp16 can underflow gradients; for fp32 and bf16 the scaler is a no-op.
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def configure_kernels(*, deterministic: bool, device: torch.device) -> None:
    """cuDNN picks the fastest convolution algorithms for the run's shapes, unless the job wants
    the same result every run; then only deterministic kernels (a warning where none exists)."""
    torch.backends.cudnn.benchmark = device.type == "cuda" and not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def uses_channels_last(requested: bool | None, device: torch.device, model: torch.nn.Module) -> bool:
    """channels_last speeds up convolutions on CUDA (tensor cores want NHWC); MLPs gain nothing.
    `requested` is the job's channels_last: None lets the device decide."""
    wanted = requested if requested is not None else device.type == "cuda"
    return wanted and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """All RNG states, as types torch.load(weights_only=True) accepts (tensors, lists, numbers)."""
    version, internal, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=True)
    assert isinstance(numpy_state, tuple)  # legacy=True always gives the tuple form
    algorithm, keys, pos, has_gauss, cached_gaussian = numpy_state
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "algorithm": str(algorithm),
            "keys": keys.tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["algorithm"],
            np.asarray(numpy["keys"], dtype=np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
