"""The load generator of bench/api_load.py, in a process of its own, beside the server's.

    python bench/load_client.py '{"base_url": "http://127.0.0.1:8000", "method": "GET",
        "path": "/health", "body": null, "clients": 8, "seconds": 5, "headers": {}}'

Prints one JSON object: the requests answered, the latencies and errors, and its CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import time
from typing import Any

import httpx

WARM_UP_S = 1.0
TIMEOUT_S = 30.0  # httpx's default, and SQLAlchemy's pool timeout: a request stuck on the pool ends by then


async def generate(spec: dict[str, Any]) -> dict[str, Any]:
    """The load generator: `clients` loops, each sending its next request when the last one answered.

    Each loop has its own AsyncClient and connection, as separate clients would: one AsyncClient
    shared by 64 tasks spent ~10 ms of CPU per request checking every pooled connection's socket,
    which made the generator, not the server, the bottleneck. Throughput counts the successes
    completed inside the window. Latencies and errors cover every request sent inside it, each
    awaited to its end (at most TIMEOUT_S), so that a request that hangs past the window still
    shows in p99 and in the errors."""
    outcomes: list[tuple[float, float, str | None]] = []  # (sent, done, error)
    tls = ssl.create_default_context()  # unused over http://, but each client would load its own
    clients = [
        httpx.AsyncClient(base_url=spec["base_url"], timeout=TIMEOUT_S, verify=tls)
        for _ in range(spec["clients"])
    ]
    cpu_start = time.process_time()
    start = time.perf_counter() + WARM_UP_S
    end = start + spec["seconds"]

    async def one_client(http: httpx.AsyncClient) -> None:
        async with http:
            while (sent := time.perf_counter()) < end:
                try:
                    response = await http.request(
                        spec["method"], spec["path"], json=spec["body"], headers=spec.get("headers")
                    )
                    error = None if response.status_code < 400 else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__} after {time.perf_counter() - sent:.1f} s"
                outcomes.append((sent, time.perf_counter(), error))

    await asyncio.gather(*(one_client(http) for http in clients))
    return {
        "answered": len(outcomes),
        "cpu_s": time.process_time() - cpu_start,
        "completed": sum(error is None and start <= done <= end for _, done, error in outcomes),
        "latencies_ms": [
            (done - sent) * 1000 for sent, done, error in outcomes if sent >= start and not error
        ],
        "errors": [error for sent, _, error in outcomes if sent >= start and error],
        "seconds": end - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("spec", help="JSON: base_url, method, path, body, clients, seconds")
    print(json.dumps(asyncio.run(generate(json.loads(parser.parse_args().spec)))))


if __name__ == "__main__":
    main()
