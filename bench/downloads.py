"""Target 5 of the performance issue: checkpoint downloads against reading the file from disk.

    python bench/downloads.py [--mib 200] [--repeats 3]

Writes a file of random bytes into a claimed job's artifacts folder and lists it with
app.queue.record_epoch, then starts uvicorn as `make run` does (one process,
default settings). Alternates, in one session, reading the file from disk in 1 MiB
reads (the baseline) and downloading it through GET /jobs/{id}/checkpoints/latest with
a streaming httpx client in this process. Nothing is dropped from the page cache: the
file stays cached from its writing, for both the reads and the server. Then resumes a
download: the first half with a Range request, the rest with a second one, and checks
the sha256 of the two parts together. Target: download >= 0.8x the disk read.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
from live_service import api_server, service_env

MIB = 1024 * 1024
CHUNK_BYTES = MIB


def make_checkpoint(env: dict[str, str], size_bytes: int) -> tuple[str, Path, str]:
    """(job id, file, sha256) of a checkpoint listed under a claimed job, as a worker lists one."""
    from app import queue
    from app.contract import EpochMetrics
    from app.db import make_engine
    from app.migrations import upgrade
    from app.models import JobCreate
    from app.resources import Capabilities

    engine = make_engine(env["TRAINQ_DATABASE_URL"])
    upgrade(engine)
    job, _ = queue.submit(engine, job_in=JobCreate(name="download benchmark"))
    any_default_job = Capabilities(cuda_devices=0, cpu_devices=1)
    lease = queue.claim(engine, worker_id="bench", lease_seconds=3600, capabilities=any_default_job)
    assert lease is not None and lease.job_id == job.id
    path = Path(env["TRAINQ_ARTIFACTS_DIR"]) / job.id / "epoch-0001.pt"
    path.parent.mkdir(parents=True)
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for _ in range(0, size_bytes, CHUNK_BYTES):
            chunk = os.urandom(min(CHUNK_BYTES, size_bytes - file.tell()))
            digest.update(chunk)
            file.write(chunk)
    checkpoint = queue.CheckpointFile(
        epoch=1, file_name=path.name, size_bytes=size_bytes, sha256=digest.hexdigest(), is_best=True
    )
    metrics = EpochMetrics(
        epoch=1, train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5,
        learning_rate=0.1, duration_seconds=1.0, samples_per_second=1.0,
    )  # fmt: skip
    listed = queue.record_epoch(engine, lease=lease, metrics=metrics, progress=1.0, checkpoint=checkpoint)
    assert listed is not None
    engine.dispose()
    return job.id, path, digest.hexdigest()


def read_disk(path: Path) -> float:
    """Seconds to read the file in CHUNK_BYTES reads."""
    start = time.perf_counter()
    with path.open("rb", buffering=0) as file:
        while file.read(CHUNK_BYTES):
            pass
    return time.perf_counter() - start


def download(http: httpx.Client, url: str, size_bytes: int) -> float:
    """Seconds to stream the whole response body, which must be size_bytes long."""
    received = 0
    start = time.perf_counter()
    with http.stream("GET", url) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            received += len(chunk)
    seconds = time.perf_counter() - start
    if received != size_bytes:
        raise SystemExit(f"downloaded {received} bytes, expected {size_bytes}")
    return seconds


def resume(http: httpx.Client, url: str, size_bytes: int, sha256: str) -> tuple[bool, str, float]:
    """Download the first half with a Range request, then the rest; (sha256 matches, how, seconds)."""
    half = size_bytes // 2
    digest = hashlib.sha256()
    ranges: list[str] = []
    start = time.perf_counter()
    for first, last in ((0, half - 1), (half, None)):
        header = f"bytes={first}-{'' if last is None else last}"
        with http.stream("GET", url, headers={"Range": header}) as response:
            if response.status_code != 206:
                return False, f"{header} answered {response.status_code}", 0.0
            ranges.append(f"{header} -> 206 {response.headers.get('content-range')}")
            for chunk in response.iter_bytes():
                digest.update(chunk)
    return digest.hexdigest() == sha256, "; ".join(ranges), time.perf_counter() - start


def curl_rate(url: str, size_bytes: int) -> float | None:
    """MiB/s of `curl -o /dev/null`, a client that costs almost nothing, when curl is installed."""
    if shutil.which("curl") is None:
        return None
    start = time.perf_counter()
    subprocess.run(["curl", "--silent", "--fail", "--output", "/dev/null", url], check=True)
    return size_bytes / MIB / (time.perf_counter() - start)


def loopback_rate(path: Path) -> float:
    """MiB/s of the file sent with sendfile(2) over a loopback TCP socket to a recv_into loop:
    the most any HTTP server and client on this machine could reach."""
    with socket.create_server(("127.0.0.1", 0)) as server:

        def send() -> None:
            connection, _ = server.accept()
            with connection, path.open("rb") as file:
                connection.sendfile(file)

        sender = threading.Thread(target=send)
        sender.start()
        buffer = bytearray(CHUNK_BYTES)
        received = 0
        start = time.perf_counter()
        with socket.create_connection(server.getsockname()) as client:
            while count := client.recv_into(buffer):
                received += count
        seconds = time.perf_counter() - start
        sender.join()
    return received / MIB / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=200, help="checkpoint size in MiB")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    size = args.mib * MIB
    ratios, disk_rates = [], []
    with tempfile.TemporaryDirectory(prefix="trainq-bench-") as tmp:
        env = service_env(Path(tmp))
        job_id, path, sha256 = make_checkpoint(env, size)
        url = f"/jobs/{job_id}/checkpoints/latest"
        print(f"checkpoint of {args.mib} MiB listed; read from the page cache in every run (nothing dropped)")
        with api_server(env) as (http, _):
            download(http, url, size)  # warm-up: the first request opens the connection and the pool
            for repeat in range(args.repeats):
                disk = size / MIB / read_disk(path)
                served = size / MIB / download(http, url, size)
                ratios.append(served / disk)
                disk_rates.append(disk)
                print(
                    f"run {repeat + 1}: disk read {disk:,.0f} MiB/s, download {served:,.0f} MiB/s, "
                    f"ratio {served / disk:.2f}",
                    flush=True,
                )
            matches, how, seconds = resume(http, url, size, sha256)
            curl = curl_rate(f"{http.base_url}{url}", size)
        loopback = loopback_rate(path)
    median = statistics.median(ratios)
    print(f"median download/disk = {median:.2f}; target >= 0.8: {'met' if median >= 0.8 else 'NOT met'}")
    rate = f", {size / MIB / seconds:,.0f} MiB/s" if matches else ""
    print(f"resume: {how}; sha256 {'matches' if matches else 'DIFFERS'}{rate}")
    print(f"target Range resume with matching sha256: {'met' if matches else 'NOT met'}")
    print(
        f"context: the file over a loopback TCP socket with sendfile, no HTTP, {loopback:,.0f} MiB/s, "
        f"{loopback / statistics.median(disk_rates):.2f}x the disk read: the ceiling on this machine"
    )
    if curl is not None:
        print(
            f"context: curl -o /dev/null of the same URL, {curl:,.0f} MiB/s (a client costing almost nothing)"
        )


if __name__ == "__main__":
    main()
