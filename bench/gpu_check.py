"""Check the GPU path end to end: a real API and worker train jobs on CUDA with AMP.

    python bench/gpu_check.py              # on a machine with an NVIDIA GPU
    python bench/gpu_check.py --device cpu --amp bf16 --epochs 1 --samples 512 --model small_cnn
                                           # the same path on CPU, small enough for a test

For each precision it submits a job through the HTTP API to a real worker, waits for
it to succeed, downloads the best checkpoint, loads it on the CPU with
`worker.load_model`, and prints the device, precision and samples per second.
Exits non-zero if anything fails.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_health(base_url: str, api: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise SystemExit("the API exited during start-up")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the API did not answer /health within 60 s")


def run_job(http: httpx.Client, hyperparameters: dict[str, object], state_dir: Path) -> dict[str, object]:
    job = http.post(
        "/jobs", json={"name": f"gpu-check-{hyperparameters['amp']}", "hyperparameters": hyperparameters}
    )
    job.raise_for_status()
    job_id = job.json()["id"]
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        shown = http.get(f"/jobs/{job_id}").json()
        if shown["status"] in {"succeeded", "failed", "cancelled"}:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} did not end within {TIMEOUT_S:.0f} s")
        time.sleep(0.5)
    if shown["status"] != "succeeded":
        raise SystemExit(f"job {job_id} ended {shown['status']}: {shown['error']}")
    download = http.get(f"/jobs/{job_id}/checkpoints/best")
    download.raise_for_status()
    path = state_dir / f"{job_id}.pt"
    path.write_bytes(download.content)
    from worker import load_model

    model = load_model(path, map_location="cpu")
    assert not model.training
    return shown


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--amp", nargs="+", default=["bf16", "fp16"], choices=["off", "bf16", "fp16"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20000, help="fake images of 3x64x64")
    parser.add_argument("--model", default="resnet18")
    args = parser.parse_args()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device is visible: run this on a GPU machine", file=sys.stderr)
            return 2
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")

    with tempfile.TemporaryDirectory(prefix="trainq-gpu-check-") as tmp:
        state_dir = Path(tmp)
        env = {
            **os.environ,
            "TRAINQ_DATABASE_URL": f"sqlite:///{state_dir / 'trainq.db'}",
            "TRAINQ_ARTIFACTS_DIR": str(state_dir / "artifacts"),
            "TRAINQ_DATA_DIR": str(state_dir / "data"),
        }
        port = free_port()
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
        )
        worker = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env)
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_for_health(base_url, api)
            with httpx.Client(base_url=base_url, timeout=30) as http:
                for amp in args.amp:
                    hyperparameters = {
                        "dataset": "fake",
                        "fake_samples": args.samples,
                        "image_size": 64,
                        "model": args.model,
                        "batch_size": 256,
                        "epochs": args.epochs,
                        "device": args.device,
                        "amp": amp,
                    }
                    job = run_job(http, hyperparameters, state_dir)
                    rates = [row["samples_per_second"] for row in job["metrics"]]  # type: ignore[union-attr]
                    print(
                        f"amp={amp}: succeeded on {job['device']} ({job['precision']}), "
                        f"samples/s per epoch {', '.join(f'{rate:,.0f}' for rate in rates)}; "
                        "best checkpoint loads on CPU"
                    )
        finally:
            for process in (worker, api):
                process.terminate()
                process.wait(timeout=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
