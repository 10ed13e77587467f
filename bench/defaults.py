"""Target 2 of the performance issue, epoch by epoch: the service's training path against the
naive loop, in one process, so that the VM's drift between processes cancels out.

    python bench/defaults.py [--epochs 12] [--batch-size 16]

Alternates one training epoch of the seed's loop (bench/naive_loop.py's: a DataLoader over a
TensorDataset, Adam with PyTorch's defaults) with one epoch of the service's own code
(worker.training: the session a job builds, its loader and optimizer, Session.train_epoch with its
progress accounting), same model (small_cnn), data (digits), batch size and thread count, and
prints the median ratio of their samples/second. Process start, data loading, validation and
checkpoints are left out here: bench/overhead.py counts them (target 1).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from naive_loop import digits_loaders, model_and_optimizer, train_epoch
from torch import nn

from app.hyperparameters import Hyperparameters
from worker.training.epoch import EpochProgress
from worker.training.session import start_session


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    train_loader, _ = digits_loaders(args.batch_size)
    model, optimizer = model_and_optimizer()
    hp = Hyperparameters(dataset="digits", model="small_cnn", batch_size=args.batch_size, epochs=args.epochs)
    with tempfile.TemporaryDirectory() as data_dir:
        session = start_session(hp, data_dir=Path(data_dir), resume_from=None)
    criterion = nn.CrossEntropyLoss()
    ratios = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        naive = train_epoch(model, optimizer, train_loader) / (time.perf_counter() - start)
        session.data.train.set_epoch(epoch)
        stats = session.train_epoch(
            criterion,
            epoch=epoch,
            on_batch=lambda _done: False,
            progress=EpochProgress.start(session.schedule.lr, session.device),
        )
        assert stats is not None
        service = stats.samples / stats.seconds
        if epoch > 1:  # the first epoch of each warms up allocators and caches
            ratios.append(service / naive)
            print(
                f"epoch {epoch}: naive {naive:,.0f} samples/s, service path {service:,.0f} samples/s, ratio {service / naive:.2f}"
            )
    median = statistics.median(ratios)
    print(
        f"median service path / naive loop = {median:.2f} over {len(ratios)} epoch pairs (digits, small_cnn, "
        f"batch {args.batch_size}, {torch.get_num_threads()} threads); target 2 >= 1.1: {'met' if median >= 1.1 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
