from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from app.hyperparameters import ModelName
from worker.training import ConfigError
from worker.training.models import build_model, pretrained_weights_file

ALL_MODELS: list[ModelName] = ["mlp", "small_cnn", "resnet18", "mobilenet_v3_small", "efficientnet_b0"]
TORCHVISION: list[ModelName] = ["resnet18", "mobilenet_v3_small", "efficientnet_b0"]
FIRST_CONV = {"resnet18": "conv1.weight", "mobilenet_v3_small": "features.0.0.weight"}
HEAD = {"resnet18": "fc.", "mobilenet_v3_small": "classifier.3."}


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize(("channels", "size"), [(1, 8), (3, 32)])
def test_every_model_maps_a_batch_of_images_to_one_logit_per_class(
    name: ModelName, channels: int, size: int
) -> None:
    model = build_model(name, pretrained=False, num_classes=7, in_channels=channels, image_size=size)

    logits = model(torch.rand(2, channels, size, size))  # train mode, as in training

    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", TORCHVISION)
def test_missing_pretrained_weights_are_a_config_error_saying_which_file_goes_where(
    name: ModelName, torch_home: Path
) -> None:
    expected, url = pretrained_weights_file(name)
    assert expected.parent == torch_home / "hub" / "checkpoints"

    with pytest.raises(ConfigError) as raised:
        build_model(name, pretrained=True, num_classes=3, in_channels=3, image_size=32)

    message = str(raised.value)
    assert expected.name in message
    assert str(expected.parent) in message
    assert url in message
    assert '"pretrained": false' in message
    assert not expected.exists()  # nothing was downloaded


@pytest.mark.parametrize(("name", "channels"), [("mobilenet_v3_small", 1), ("resnet18", 3)])
def test_pretrained_weights_are_loaded_from_the_hub_cache_with_a_new_head(
    name: ModelName, channels: int, torch_home: Path
) -> None:
    path, _ = pretrained_weights_file(name)
    path.parent.mkdir(parents=True)
    torch.manual_seed(1234)
    imagenet = torchvision.models.get_model(name, weights=None, num_classes=1000).state_dict()
    torch.save(imagenet, path)

    torch.manual_seed(0)  # a different init, so equal tensors can only come from the file
    model = build_model(name, pretrained=True, num_classes=5, in_channels=channels, image_size=8)

    state = model.state_dict()
    first_conv, head = FIRST_CONV[name], HEAD[name]
    backbone = [key for key in imagenet if key != first_conv and not key.startswith(head)]
    assert len(backbone) > 10
    for key in backbone:
        assert torch.equal(state[key], imagenet[key]), key
    assert state[head + "weight"].shape[0] == 5
    expected_first = imagenet[first_conv].sum(dim=1, keepdim=True) if channels == 1 else imagenet[first_conv]
    torch.testing.assert_close(state[first_conv], expected_first)
    assert model(torch.rand(2, channels, 8, 8)).shape == (2, 5)


def test_an_unreadable_pretrained_file_is_a_config_error(torch_home: Path) -> None:
    path, url = pretrained_weights_file("resnet18")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a state dict")

    with pytest.raises(ConfigError, match="replace it with the file from") as raised:
        build_model("resnet18", pretrained=True, num_classes=2, in_channels=3, image_size=32)
    assert url in str(raised.value)
