"""Target 4 of the performance issue: checkpoint downloads against a plain sendfile server.

    python bench/downloads.py [--mib 200] [--repeats 3]

Writes a file of random bytes into a claimed job's artifacts folder and lists it with
app.queue.record_epoch, then, in one session, alternates `curl -o /dev/null` (a client that
costs almost nothing) of three servers over loopback:
- baseline: a plain HTTP server that answers with the file through sendfile(2), in this process;
- the API as `make run` starts it (uvicorn), GET /jobs/{id}/checkpoints/latest;
- nginx with deploy/nginx.conf before an API with TRAINQ_ACCEL_REDIRECT_PREFIX (when Debian's
  nginx is installed): the API checks the request, nginx sends the file.
Nothing is dropped from the page cache: the file stays cached from its writing, for all three.
Then resumes a download through each server of the API: the first half with a Range request,
the rest with a second one, and checks the sha256 of the two parts together. Target: the
download >= 0.8x the plain sendfile server, through nginx or the API alone.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from live_service import ROOT, api_server, service_env

sys.path.insert(0, str(ROOT))
from tests.support.nginx import NGINX, nginx_in_front  # deploy/nginx.conf, as the tests run it

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


def curl_rate(url: str, size_bytes: int, headers: dict[str, str]) -> float:
    """MiB/s of `curl -o /dev/null` of the whole file."""
    header_args = [arg for name, value in headers.items() for arg in ("--header", f"{name}: {value}")]
    start = time.perf_counter()
    result = subprocess.run(
        [
            "curl",
            "--silent",
            "--fail",
            "--output",
            "/dev/null",
            "--write-out",
            "%{size_download}",
            *header_args,
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if int(result.stdout) != size_bytes:
        raise SystemExit(f"{url}: downloaded {result.stdout} bytes, expected {size_bytes}")
    return size_bytes / MIB / seconds


@contextmanager
def sendfile_server(path: Path) -> Iterator[str]:
    """A plain HTTP server answering every request with the file through sendfile(2): the most an
    HTTP server on this machine could give; yields its URL."""
    size = path.stat().st_size
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_server(("127.0.0.1", 0)) as server:

        def serve() -> None:
            while True:
                try:
                    connection, _ = server.accept()
                except OSError:  # the socket was closed: the benchmark is over
                    return
                with connection, path.open("rb") as file:
                    request = b""
                    while b"\r\n\r\n" not in request and (data := connection.recv(4096)):
                        request += data
                    connection.sendall(head)
                    connection.sendfile(file)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        host, port = server.getsockname()
        yield f"http://{host}:{port}/"
        server.shutdown(socket.SHUT_RDWR)


@contextmanager
def nginx_server(env: dict[str, str], work_dir: Path) -> Iterator[str | None]:
    """nginx with deploy/nginx.conf before its own API; yields its base URL, or None without nginx."""
    if shutil.which(NGINX) is None:
        yield None
        return
    with (
        api_server({**env, "TRAINQ_ACCEL_REDIRECT_PREFIX": "/_artifacts/"}) as (http, _),
        nginx_in_front(str(http.base_url), Path(env["TRAINQ_ARTIFACTS_DIR"]), work_dir) as base_url,
    ):
        yield base_url


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=200, help="checkpoint size in MiB")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("this benchmark downloads with curl: apt-get install curl")
    size = args.mib * MIB
    rates: dict[str, list[float]] = {"sendfile": [], "api": [], "nginx": []}
    with tempfile.TemporaryDirectory(prefix="trainq-bench-") as tmp:
        env = service_env(Path(tmp))
        job_id, path, sha256 = make_checkpoint(env, size)
        url = f"/jobs/{job_id}/checkpoints/latest"
        print(f"checkpoint of {args.mib} MiB listed; read from the page cache in every run (nothing dropped)")
        with (
            sendfile_server(path) as plain,
            api_server(env) as (http, _),
            nginx_server(env, Path(tmp) / "nginx") as nginx,
        ):
            servers = {"sendfile": plain, "api": f"{http.base_url}{url}"}
            if nginx is None:
                print("nginx is not installed (apt-get install nginx-light): the API alone is measured")
            else:
                servers["nginx"] = f"{nginx}{url}"
            for server_url in servers.values():  # warm-up: each server's first answer
                curl_rate(server_url, size, {})
            for repeat in range(args.repeats):
                for name, server_url in servers.items():
                    rates[name].append(curl_rate(server_url, size, {}))
                print(
                    f"run {repeat + 1}: "
                    + ", ".join(f"{name} {rates[name][-1]:,.0f} MiB/s" for name in servers)
                    + "".join(
                        f", {name}/sendfile {rates[name][-1] / rates['sendfile'][-1]:.2f}"
                        for name in servers
                        if name != "sendfile"
                    ),
                    flush=True,
                )
            resumed = {"api": resume(http, url, size, sha256)}
            if nginx is not None:
                with httpx.Client(base_url=nginx, timeout=30) as through_nginx:
                    resumed["nginx"] = resume(through_nginx, url, size, sha256)
    medians = {name: statistics.median(values) for name, values in rates.items() if values}
    for name in medians.keys() - {"sendfile"}:
        ratio = medians[name] / medians["sendfile"]
        print(
            f"median {name} / sendfile server = {ratio:.2f} ({medians[name]:,.0f} vs {medians['sendfile']:,.0f} MiB/s)"
        )
    best = max(medians[name] / medians["sendfile"] for name in medians.keys() - {"sendfile"})
    print(
        f"target download >= 0.8x a plain sendfile server: {'met' if best >= 0.8 else 'NOT met'} ({best:.2f}x)"
    )
    for name, (matches, how, seconds) in resumed.items():
        rate = f", {size / MIB / seconds:,.0f} MiB/s" if matches else ""
        print(f"resume through {name}: {how}; sha256 {'matches' if matches else 'DIFFERS'}{rate}")
    all_match = all(matches for matches, _, _ in resumed.values())
    print(f"target Range resume with matching sha256: {'met' if all_match else 'NOT met'}")


if __name__ == "__main__":
    main()
