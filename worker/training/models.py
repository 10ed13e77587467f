"""Model construction: our two small nets and three torchvision backbones.

Pretrained weights are never downloaded here: they are read from torch's hub
cache, where an operator puts them, so a worker without internet behaves the
same every time.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from app.hyperparameters import TORCHVISION_MODELS, ModelName

from .errors import ConfigError

logger = logging.getLogger(__name__)

MLP_HIDDEN = 256
CNN_POOLED_SIZE = 4
CNN_DROPOUT = 0.2


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def small_cnn(num_classes: int, in_channels: int) -> nn.Sequential:
    """Two 3x3 conv blocks; the adaptive pool makes it work from 8x8 digits to large images."""
    return nn.Sequential(
        *_conv_block(in_channels, 32),
        nn.MaxPool2d(2),
        *_conv_block(32, 64),
        nn.AdaptiveAvgPool2d(CNN_POOLED_SIZE),
        nn.Flatten(),
        nn.Dropout(CNN_DROPOUT),
        nn.Linear(64 * CNN_POOLED_SIZE * CNN_POOLED_SIZE, num_classes),
    )


def mlp(num_classes: int, in_channels: int, image_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, MLP_HIDDEN),
        nn.ReLU(inplace=True),
        nn.Linear(MLP_HIDDEN, num_classes),
    )


def _first_conv(model: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    """(parent module, attribute name, conv) of the conv that reads the image."""
    parent_path, name = ("", "conv1") if isinstance(model, torchvision.models.ResNet) else ("features.0", "0")
    parent = model.get_submodule(parent_path)
    conv = parent.get_submodule(name)
    assert isinstance(conv, nn.Conv2d)
    return parent, name, conv


def _adapt_input_channels(model: nn.Module, in_channels: int, *, keep_weights: bool) -> None:
    parent, name, old = _first_conv(model)
    if old.in_channels == in_channels:
        return
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        kernel_size=old.kernel_size,  # type: ignore[arg-type]  # torch types them loosely
        stride=old.stride,  # type: ignore[arg-type]
        padding=old.padding,  # type: ignore[arg-type]
        bias=old.bias is not None,
    )
    if not keep_weights:
        setattr(parent, name, new)
        return
    with torch.no_grad():
        # Averaging the RGB kernels keeps pretrained features meaningful; scaled so
        # a gray image gives the response the same gray in RGB would (a plain sum for 1 channel).
        mean_kernel = old.weight.mean(dim=1, keepdim=True)
        new.weight.copy_(mean_kernel.repeat(1, in_channels, 1, 1) * (old.in_channels / in_channels))
        if old.bias is not None and new.bias is not None:
            new.bias.copy_(old.bias)
    setattr(parent, name, new)


def _replace_head(model: nn.Module, num_classes: int) -> None:
    if isinstance(model, torchvision.models.ResNet):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
        return
    classifier = model.get_submodule("classifier")
    assert isinstance(classifier, nn.Sequential)
    last = classifier[-1]
    assert isinstance(last, nn.Linear)
    classifier[-1] = nn.Linear(last.in_features, num_classes)


def pretrained_weights_file(name: str) -> tuple[Path, str]:
    """Where torch's hub cache keeps `name`'s default weights, and the URL they come from."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    filename = PurePosixPath(urlparse(weights.url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / filename, weights.url


def build_architecture(model_name: str, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """The untrained network; enough to load any of our checkpoints into."""
    if model_name == "mlp":
        return mlp(num_classes, in_channels, image_size)
    if model_name == "small_cnn":
        return small_cnn(num_classes, in_channels)
    if model_name in TORCHVISION_MODELS:
        model: nn.Module = torchvision.models.get_model(model_name, weights=None, num_classes=num_classes)
        _adapt_input_channels(model, in_channels, keep_weights=False)
        return model
    raise ConfigError(f"unknown model {model_name!r}")


def _pretrained(model_name: str, num_classes: int, in_channels: int) -> nn.Module:
    path, url = pretrained_weights_file(model_name)
    if not path.is_file():
        raise ConfigError(
            f"pretrained weights for {model_name} are not on this worker: put {path.name} into "
            f"{path.parent}/ (download it from {url} on a machine with internet access), "
            'or resubmit with "pretrained": false'
        )
    weights = torchvision.models.get_model_weights(model_name).DEFAULT
    model: nn.Module = torchvision.models.get_model(
        model_name, weights=None, num_classes=len(weights.meta["categories"])
    )
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise ConfigError(
            f"{path} is not a readable {model_name} state dict ({exc}); replace it with the file from {url}"
        ) from exc
    logger.info("loaded pretrained %s weights from %s", model_name, path)
    _replace_head(model, num_classes)
    _adapt_input_channels(model, in_channels, keep_weights=True)
    return model


def build_model(
    name: ModelName, *, pretrained: bool, num_classes: int, in_channels: int, image_size: int
) -> nn.Module:
    """The model `name`, with `num_classes` outputs, for in_channels x image_size^2 inputs;
    starting from ImageNet weights (TORCH_HOME's file) when `pretrained`."""
    if pretrained:
        return _pretrained(name, num_classes, in_channels)
    return build_architecture(name, num_classes, in_channels, image_size)


def head_parameter_names(model: nn.Module) -> frozenset[str]:
    """The classifier head's state-dict keys: those of the last Linear layer, which maps features to
    classes in every model built here (small_cnn's and mlp's last layer, resnet18's fc,
    mobilenet_v3_small's classifier.3, efficientnet_b0's classifier.1). A warm start replaces it
    when the class count differs; freeze_backbone trains it alone."""
    last = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)][-1]
    return frozenset(f"{last}.{key}" for key in model.get_submodule(last).state_dict())
