"""The API under more requests at once than it has threads and pooled connections."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import httpx

from tests.e2e.conftest import Service

# More than the request threads (40) and the SQLite pool (40) together.
AT_ONCE = 160


def test_a_flood_of_submissions_is_answered_in_full_and_the_api_serves_on(service: Service) -> None:
    # FastAPI serialised a sync route's result in the thread pool while its session held a pooled
    # connection: with every connection held that way and every thread waiting for a connection,
    # nothing was answered until the pool's 30 s timeout, then 500s.
    async def flood() -> list[int]:
        limits = httpx.Limits(max_connections=AT_ONCE)
        async with httpx.AsyncClient(base_url=service.http.base_url, limits=limits, timeout=120) as client:
            body = {"hyperparameters": {"dataset": "digits", "epochs": 1}}
            answers = await asyncio.gather(*(client.post("/jobs", json=body) for _ in range(AT_ONCE)))
            return [answer.status_code for answer in answers]

    assert asyncio.run(flood()) == [201] * AT_ONCE
    assert service.http.get("/jobs", params={"limit": 1}).json()["items"]
    assert service.http.get("/health").status_code == 200


def test_the_api_serves_on_asyncios_event_loop_not_uvloop(service: Service) -> None:
    # uvloop accepts one new connection per turn of its loop: under load, a burst of new clients
    # waited up to 0.8 s for their first answer (BENCHMARKS.md). uvicorn[standard] installs it,
    # and uvicorn's default (--loop auto) would choose it.
    assert importlib.util.find_spec("uvloop") is not None  # installed: `auto` would have chosen it
    assert "uvloop" not in Path(f"/proc/{service.api.pid}/maps").read_text()
