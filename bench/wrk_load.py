"""bench/api_load.py's load generator when wrk (a C load generator) is installed: it takes a
fraction of the CPU that the Python one (bench/load_client.py) needs, so on a small machine the
server, not the generator, is what is measured.

    python bench/wrk_load.py '{"base_url": "http://127.0.0.1:8000", "method": "GET",
        "path": "/health", "body": null, "clients": 8, "seconds": 5, "headers": {}}'

Prints the same JSON object as load_client.py, with p50_ms and p99_ms (from wrk's latency
distribution) instead of every latency, and error_count beside a line per kind of error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
from typing import Any

WARM_UP_S = 1
TIMEOUT_S = 30  # as load_client.py's: a request stuck on the pool ends by then
# One wrk thread per core that the server (one process: one core) leaves free, at most two and at
# most one per connection. On 2 cores a second thread takes the server's core away from it: wrk's
# p99 at 64 connections was 4x what one thread, or ab's single thread, measured (BENCHMARKS.md).
THREADS = max(1, min((os.cpu_count() or 2) - 1, 2))
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def available() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"wrk printed a latency it cannot read: {text!r}")
    return float(match[1]) * _UNITS_MS[match[2]]


def _run(spec: dict[str, Any], seconds: int, script: str) -> str:
    clients = int(spec["clients"])
    command = [
        "wrk",
        f"-t{min(THREADS, clients)}",
        f"-c{clients}",
        f"-d{seconds}s",
        f"--timeout={TIMEOUT_S}s",
    ]
    command += ["--latency", "-s", script, spec["base_url"].rstrip("/") + spec["path"]]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def generate(spec: dict[str, Any]) -> dict[str, Any]:
    """A warm-up run, then the measured one: `clients` connections, each sending its next
    request when the last one answered. Errors: socket errors and 4xx/5xx answers."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        # The request as a Lua script: wrk takes a method and a body only from one.
        script.write(f"wrk.method = {json.dumps(spec['method'])}\n")
        for name, value in spec.get("headers", {}).items():
            script.write(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n")
        if spec["body"] is not None:
            script.write(f"wrk.body = {json.dumps(json.dumps(spec['body']))}\n")
            script.write('wrk.headers["Content-Type"] = "application/json"\n')
        script.write(
            "done = function(summary, latency, requests)\n"
            '  io.write(string.format("4xx/5xx: %d\\n", summary.errors.status))\nend\n'
        )
        script.flush()
        _run(spec, WARM_UP_S, script.name)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = _run(spec, int(spec["seconds"]), script.name)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)[1])  # type: ignore[index]
    seconds = float(re.search(r"requests in ([\d.]+)s", out)[1])  # type: ignore[index]
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = sum(int(n) for n in sockets.groups()) if sockets else 0
    status_errors = int(re.search(r"4xx/5xx: (\d+)", out)[1])  # type: ignore[index]
    errors = [f"{status_errors} answers with a status >= 400"] if status_errors else []
    errors += [f"{socket_errors} socket errors ({sockets[0] if sockets else ''})"] if socket_errors else []
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, flags=re.MULTILINE))
    return {
        "answered": total,
        "completed": total - status_errors,
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "errors": errors,  # one line per kind
        "error_count": status_errors + socket_errors,
        "seconds": seconds,
        "p50_ms": _ms(percentiles["50"]),
        "p99_ms": _ms(percentiles["99"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("spec", help="JSON: base_url, method, path, body, clients, seconds")
    print(json.dumps(generate(json.loads(parser.parse_args().spec))))


if __name__ == "__main__":
    main()
