"""Check the GPU path end to end: a real API and worker train jobs on CUDA with AMP.

    python bench/gpu_check.py              # on a machine with an NVIDIA GPU
    python bench/gpu_check.py --device cpu --amp bf16 --epochs 1 --samples 512 --model small_cnn
                                           # the same path on CPU, small enough for a test
    python bench/gpu_check.py --devices 1 2 # also one job on two devices (torchrun, DDP)

For each precision and device count it submits a job through the HTTP API to a real worker,
waits for it to succeed, downloads the best checkpoint, loads it on the CPU with
`worker.load_model`, and prints the device, precision and samples per second (of all devices
together; the batch size is per device). For more than one device count it also prints the
scaling: the last epoch's samples per second against the first count's, and per device.
By default it trains on one device and, where more than one GPU is visible, on all of them.
Exits non-zero if anything fails.
"""

from __future__ import annotations

import argparse
import sys

from live_service import live_service, run_job


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--amp", nargs="+", default=["bf16", "fp16"], choices=["off", "bf16", "fp16"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20000, help="fake images of 3x64x64")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--devices", type=int, nargs="+", help="device counts to train on, one job each")
    args = parser.parse_args()
    counts: list[int] = args.devices or [1]
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device is visible: run this on a GPU machine", file=sys.stderr)
            return 2
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
        gpus = torch.cuda.device_count()
        counts = args.devices or ([1, gpus] if gpus > 1 else [1])
        print(f"{gpus} GPU(s) visible; training on {counts} device(s)")

    from worker import load_model

    with live_service(quiet=False) as (http, state_dir):
        for amp in args.amp:
            baseline: tuple[int, float] | None = None
            for devices in counts:
                job = run_job(
                    http,
                    {
                        "dataset": "fake",
                        "fake_samples": args.samples,
                        "image_size": 64,
                        "model": args.model,
                        "batch_size": 256,
                        "epochs": args.epochs,
                        "device": args.device,
                        "amp": amp,
                    },
                    resources={"devices": devices},
                )
                download = http.get(f"/jobs/{job['id']}/checkpoints/best")
                download.raise_for_status()
                path = state_dir / f"{job['id']}.pt"
                path.write_bytes(download.content)
                model = load_model(path, map_location="cpu")
                assert not model.training
                rates = [row["samples_per_second"] for row in job["metrics"]]
                print(
                    f"amp={amp}: succeeded on {job['device']} ({job['precision']}) with {devices} device(s), "
                    f"samples/s per epoch {', '.join(f'{r:,.0f}' for r in rates)}; best checkpoint loads on CPU"
                )
                if baseline is None:
                    baseline = (devices, rates[-1])
                else:
                    speedup = rates[-1] / baseline[1]
                    print(
                        f"amp={amp}: {devices} devices train {speedup:.2f}x the samples/s of {baseline[0]} "
                        f"({speedup * baseline[0] / devices:.2f} of linear scaling)"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
