"""The fast paths give the same training as the plain ones: same batches, same accuracy."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset

from worker.training.loaders import DeviceLoader, TensorLoader
from worker.training.optim import build_optimizer

Train = Callable[..., Any]  # the `train` fixture from conftest.py


@pytest.mark.parametrize("shuffle", [True, False])
def test_the_in_memory_loader_serves_the_same_batches_as_a_dataloader_for_a_seed(shuffle: bool) -> None:
    images = torch.randn(103, 1, 8, 8)
    labels = torch.randint(0, 10, (103,))
    cpu = torch.device("cpu")
    fast = TensorLoader(images, labels, batch_size=16, device=cpu, shuffle=shuffle, seed=7)
    plain = DeviceLoader(
        TensorDataset(images, labels), batch_size=16, device=cpu, shuffle=shuffle, num_workers=0, seed=7
    )
    assert len(fast) == len(plain)
    for epoch, start_batch in [(1, 0), (2, 0), (3, 4)]:
        fast.set_epoch(epoch, start_batch=start_batch)
        plain.set_epoch(epoch, start_batch=start_batch)
        fast_batches, plain_batches = list(fast), list(plain)
        assert len(fast_batches) == len(plain_batches) == len(fast) - start_batch
        for (a_images, a_labels), (b_images, b_labels) in zip(fast_batches, plain_batches, strict=True):
            assert torch.equal(a_images, b_images)
            assert torch.equal(a_labels, b_labels)


def test_channels_last_batches_and_weights_train_to_the_same_accuracy(train: Train) -> None:
    plain = train(model="small_cnn", epochs=2, batch_size=64, channels_last=False)
    fast = train(model="small_cnn", epochs=2, batch_size=64, channels_last=True)
    state = torch.load(fast.checkpoint_dir / "epoch-0002.pt", weights_only=True)["model_state_dict"]
    conv_weight = next(w for w in state.values() if w.dim() == 4)
    assert conv_weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(plain.recorder.metrics, fast.recorder.metrics, strict=True):
        assert b.val_accuracy == pytest.approx(a.val_accuracy, abs=0.02)
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-3)


def test_a_compiled_model_trains_to_the_same_accuracy_and_saves_plain_weights(train: Train) -> None:
    plain = train(model="mlp", epochs=3, batch_size=64)
    compiled = train(model="mlp", epochs=3, batch_size=64, compile=True)
    keys = torch.load(compiled.checkpoint_dir / "epoch-0003.pt", weights_only=True)["model_state_dict"]
    assert keys and not any(key.startswith("_orig_mod.") for key in keys)
    # Fused kernels round differently, so the runs drift apart a little; they must end up as good.
    final, compiled_final = plain.recorder.metrics[-1], compiled.recorder.metrics[-1]
    assert compiled_final.val_accuracy == pytest.approx(final.val_accuracy, abs=0.03)
    assert compiled_final.train_loss == pytest.approx(final.train_loss, rel=0.1)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_the_fused_optimizers_step_like_the_plain_ones(optimizer: str) -> None:
    torch.manual_seed(0)
    plain_model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    fused_model = copy.deepcopy(plain_model)
    fused = build_optimizer(
        optimizer, fused_model.parameters(), learning_rate=0.01, weight_decay=0.01, momentum=0.9
    )
    assert fused.defaults["fused"] is True
    kind = type(fused)
    plain_kwargs = {k: v for k, v in fused.defaults.items() if k in {"lr", "weight_decay", "momentum"}}
    plain = kind(plain_model.parameters(), **plain_kwargs, fused=False, foreach=False)
    inputs, targets = torch.randn(32, 8), torch.randint(0, 3, (32,))
    for model, optim in [(plain_model, plain), (fused_model, fused)]:
        for _ in range(5):
            optim.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs), targets).backward()
            optim.step()
    for a, b in zip(plain_model.parameters(), fused_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
