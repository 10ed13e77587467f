"""The hand-written baseline: the seed's run_training.py loop on digits, as users write it.

DataLoader over a TensorDataset, then per batch zero_grad, forward, loss, backward,
step; validation under eval()/no_grad each epoch. Same model, split, batch size and
epochs as the service's job. Prints one JSON line: training samples per second of
the loop (train + validation), excluding imports and data loading.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from worker.training.datasets import split_indices
from worker.training.models import small_cnn

Loader = DataLoader[tuple[torch.Tensor, ...]]


def digits_loaders(batch_size: int) -> tuple[Loader, Loader]:
    """(train, validation) loaders over the split a digits job uses."""
    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target)
    train_index, val_index = split_indices(len(labels), 0.2, seed=0)
    train = DataLoader(TensorDataset(images[train_index], labels[train_index]), batch_size, shuffle=True)
    return train, DataLoader(TensorDataset(images[val_index], labels[val_index]), batch_size)


def model_and_optimizer() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = small_cnn(10, 1)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: Loader) -> int:
    """One epoch of the seed's loop; returns the samples trained on."""
    criterion = nn.CrossEntropyLoss()
    model.train()
    samples = 0
    for batch, target in loader:
        optimizer.zero_grad()
        loss = criterion(model(batch), target)
        loss.backward()
        optimizer.step()
        samples += len(target)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    train_loader, val_loader = digits_loaders(args.batch_size)
    model, optimizer = model_and_optimizer()

    start = time.perf_counter()
    samples = 0
    for _ in range(args.epochs):
        samples += train_epoch(model, optimizer, train_loader)
        model.eval()
        correct = 0
        with torch.no_grad():
            for batch, target in val_loader:
                correct += int((model(batch).argmax(1) == target).sum())
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "samples": samples,
                "seconds": seconds,
                "samples_per_second": samples / seconds,
                "val_accuracy": correct / len(val_loader.dataset),  # type: ignore[arg-type]
            }
        )
    )


if __name__ == "__main__":
    main()
