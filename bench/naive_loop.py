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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target)
    train_index, val_index = split_indices(len(labels), 0.2, seed=0)
    train_loader = DataLoader(
        TensorDataset(images[train_index], labels[train_index]), args.batch_size, shuffle=True
    )
    val_loader = DataLoader(TensorDataset(images[val_index], labels[val_index]), args.batch_size)
    model = small_cnn(10, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()

    start = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for batch, target in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(batch), target)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for batch, target in val_loader:
                correct += int((model(batch).argmax(1) == target).sum())
    seconds = time.perf_counter() - start
    samples = len(train_index) * args.epochs
    print(
        json.dumps(
            {
                "samples": samples,
                "seconds": seconds,
                "samples_per_second": samples / seconds,
                "val_accuracy": correct / len(val_index),
            }
        )
    )


if __name__ == "__main__":
    main()
