"""A 1 GiB checkpoint uploaded to a real API process: streamed to disk, so its memory stays flat."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import queue
from app.db import make_engine
from app.uploads import content_digest
from tests.e2e.conftest import Service
from tests.factories import ONE_CPU, submit_job
from tests.support.polling import wait_for

CHUNK_BYTES = 1024 * 1024
UPLOAD_BYTES = 1024 * CHUNK_BYTES
MAX_GROWTH_BYTES = 100 * 1024 * 1024


def chunks() -> Iterator[bytes]:
    block = bytes(range(256)) * (CHUNK_BYTES // 256)
    for number in range(UPLOAD_BYTES // CHUNK_BYTES):
        yield number.to_bytes(8, "big") + block[8:]


def peak_rss_bytes(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def test_a_one_gib_upload_does_not_raise_the_apis_memory_by_more_than_100_mb(service: Service) -> None:
    engine = make_engine(service.env["TRAINQ_DATABASE_URL"])
    job = submit_job(engine)
    lease = queue.claim(engine, worker_id="remote", lease_seconds=600, capabilities=ONE_CPU)
    engine.dispose()
    assert lease is not None
    digest = hashlib.sha256()
    for chunk in chunks():
        digest.update(chunk)
    url = f"/jobs/{job.id}/attempts/1/files/epoch-0001.pt"
    # Warm the upload route up first, so that what it imports and allocates once is in the baseline.
    warm = service.http.put(
        url, content=b"x", headers={"Content-Digest": content_digest(hashlib.sha256(b"x").hexdigest())}
    )
    assert warm.status_code == 201, warm.text
    before = peak_rss_bytes(service.api.pid)

    response = service.http.put(
        url,
        content=chunks(),
        headers={"Content-Digest": content_digest(digest.hexdigest()), "Content-Length": str(UPLOAD_BYTES)},
        timeout=300,
    )

    assert response.status_code == 201, response.text
    assert response.json()["size_bytes"] == UPLOAD_BYTES
    stored = service.state_dir / "artifacts" / job.id / "attempt-1" / "epoch-0001.pt"
    assert stored.stat().st_size == UPLOAD_BYTES
    growth = peak_rss_bytes(service.api.pid) - before
    assert growth < MAX_GROWTH_BYTES, f"the API's peak memory grew by {growth / 2**20:.0f} MiB"


class ClientGone(Exception):
    pass


def test_an_upload_cut_off_half_way_leaves_no_file(service: Service) -> None:
    engine = make_engine(service.env["TRAINQ_DATABASE_URL"])
    job = submit_job(engine)
    assert queue.claim(engine, worker_id="remote", lease_seconds=600, capabilities=ONE_CPU) is not None
    engine.dispose()

    def half() -> Iterator[bytes]:
        for number, chunk in enumerate(chunks()):
            if number == 8:
                raise ClientGone
            yield chunk

    with pytest.raises(ClientGone):
        service.http.put(
            f"/jobs/{job.id}/attempts/1/files/epoch-0001.pt",
            content=half(),
            headers={"Content-Digest": content_digest("0" * 64), "Content-Length": str(UPLOAD_BYTES)},
        )
    folder = service.state_dir / "artifacts" / job.id

    def nothing_left() -> bool:
        return not [p for p in folder.rglob("*") if p.is_file()]

    wait_for(nothing_left, timeout_s=30, interval_s=0.05, what="the partial upload to be removed")
    assert "Traceback" not in service.api.log()
