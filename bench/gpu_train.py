"""GPU benchmark: ResNet-18 (random init) on fake 3x224x224 images, training samples per second.

    python bench/gpu_train.py                    # on a machine with CUDA
    python bench/gpu_train.py --device cpu --steps 3 --image-size 32 --batch-size 8
                                                 # a smoke run of the same code on the CPU

The baseline is the naive loop users write: a DataLoader over a TensorDataset of float32
images in CPU memory, `.to(device)` per batch, fp32, zero_grad/forward/backward/step.
The service's variants run the job's own path: worker.training's start_session (data on
the device, model, optimizer, cudnn settings) and train_one_epoch, with the job's
hyperparameters amp, channels_last and compile. Each variant trains --warmup steps
untimed (torch.compile compiles there), then --steps timed steps, synchronised with
the device. The naive loop runs first and again last; ratios are against their mean.
Without CUDA (and without --device cpu) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.hyperparameters import Hyperparameters

# The service's variants, as job hyperparameters (channels_last None is the default: on for CUDA).
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {"amp": "off", "channels_last": False},
    "bf16": {"amp": "bf16", "channels_last": False},
    "fp32+channels_last (the CUDA defaults)": {"amp": "off", "channels_last": True},
    "bf16+channels_last": {"amp": "bf16", "channels_last": True},
    "bf16+channels_last+compile": {"amp": "bf16", "channels_last": True, "compile": True},
}
NUM_CLASSES = 1000
BATCHES_PER_EPOCH = 8


def hyperparameters(args: argparse.Namespace, **variant: Any) -> Hyperparameters:
    return Hyperparameters(
        dataset="fake",
        fake_samples=args.batch_size * BATCHES_PER_EPOCH * 5 // 4,  # 8 training batches after the 20 % split
        fake_num_classes=NUM_CLASSES,
        image_size=args.image_size,
        model="resnet18",
        batch_size=args.batch_size,
        device=args.device,
        **variant,
    )


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def naive_rate(args: argparse.Namespace) -> tuple[float, float]:
    """(samples/s, warm-up seconds) of the hand-written loop on the same images."""
    import torch
    import torchvision
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from worker.training.data import make_fake_split

    torch.backends.cudnn.benchmark = False  # the default a hand-written loop runs with
    arrays = make_fake_split(hyperparameters(args))
    images = arrays.train_images.float().div_(255.0)
    loader = DataLoader(TensorDataset(images, arrays.train_labels), args.batch_size, shuffle=True)
    model = torchvision.models.resnet18(num_classes=NUM_CLASSES).to(args.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()

    def train(steps: int) -> int:
        samples = 0
        while steps > 0:
            for batch, target in loader:
                batch, target = batch.to(args.device), target.to(args.device)
                optimizer.zero_grad()
                criterion(model(batch), target).backward()
                optimizer.step()
                samples, steps = samples + len(target), steps - 1
                if steps == 0:
                    break
        synchronize(args.device)
        return samples

    return timed(train, args)


def service_rate(args: argparse.Namespace, variant: dict[str, Any]) -> tuple[float, float]:
    """(samples/s, warm-up seconds) of the job's training path with these hyperparameters."""
    from torch import nn

    from worker.training import EpochProgress
    from worker.training.session import start_session

    with tempfile.TemporaryDirectory() as data_dir:
        session = start_session(hyperparameters(args, **variant), data_dir=Path(data_dir), resume_from=None)
    criterion = nn.CrossEntropyLoss()

    def train(steps: int) -> int:
        samples, epoch = 0, 0
        while steps > 0:
            epoch += 1
            session.data.train.set_epoch(epoch)
            progress = EpochProgress.start(session.schedule.lr, session.device)
            wanted = min(steps, len(session.data.train))
            # Reads the loss totals at the end, which waits for the device.
            session.train_epoch(
                criterion, epoch=epoch, on_batch=lambda done, wanted=wanted: done >= wanted, progress=progress
            )
            samples, steps = samples + progress.samples, steps - progress.batches_done
        return samples

    return timed(train, args)


def timed(train: Callable[[int], int], args: argparse.Namespace) -> tuple[float, float]:
    """(samples/s of args.steps steps, seconds of the args.warmup steps before them)."""
    start = time.perf_counter()
    train(args.warmup)
    warm_up_s = time.perf_counter() - start
    start = time.perf_counter()
    samples = train(args.steps)
    return samples / (time.perf_counter() - start), warm_up_s


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--steps", type=int, default=50, help="timed training steps per variant")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before them")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device is visible: nothing measured (--device cpu --steps 3 runs a smoke test)")
        return 0
    where = (
        torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"{where}, torch {torch.__version__}; ResNet-18, fake 3x{args.image_size}x{args.image_size} images, "
        f"{NUM_CLASSES} classes, batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up",
        flush=True,
    )
    first, _ = naive_rate(args)
    print(f"naive loop (DataLoader, .to(device) per batch, fp32): {first:,.0f} samples/s", flush=True)
    rates = {}
    for name in args.variants:
        rates[name], warm_up_s = service_rate(args, VARIANTS[name])
        print(f"service {name}: {rates[name]:,.0f} samples/s (warm-up {warm_up_s:.1f} s)", flush=True)
    last, _ = naive_rate(args)
    naive = (first + last) / 2
    print(f"naive loop again: {last:,.0f} samples/s; baseline = mean {naive:,.0f} samples/s")
    for name, rate in rates.items():
        print(f"service {name} / naive = {rate / naive:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
