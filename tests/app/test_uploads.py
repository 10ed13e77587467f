"""Workers on other hosts: attempt files uploaded to the API, fenced by the attempt, and fetched back."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from app import queue
from app.main import create_app
from app.settings import Settings
from app.uploads import content_digest
from tests.factories import COMPLETED, ONE_CPU, epoch_metrics, list_checkpoint, submit_job

WORKER_KEY = "w" * 24
ALICE_KEY = "a" * 24


def put(client: TestClient, url: str, body: bytes, sha256: str | None = None, **headers: str):  # type: ignore[no-untyped-def]
    digest = {"Content-Digest": content_digest(sha256 or hashlib.sha256(body).hexdigest())}
    return client.put(url, content=body, headers={**digest, **headers})


def running(engine: Engine) -> queue.Lease:
    submit_job(engine)
    lease = queue.claim(engine, worker_id="remote", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    return lease


def job_files(settings: Settings, job_id: str) -> list[str]:
    folder = settings.artifacts_dir / job_id
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_an_uploaded_checkpoint_is_stored_and_listed_only_by_the_workers_row(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    lease = running(engine)
    body = b"weights" * 300_000  # 2 MiB: past TRAINQ_MAX_BODY_BYTES, which uploads are not held to
    response = put(client, f"/jobs/{lease.job_id}/attempts/1/files/epoch-0001.pt", body)
    assert response.status_code == 201, response.text
    sha = hashlib.sha256(body).hexdigest()
    assert response.json() == {"file_name": "attempt-1/epoch-0001.pt", "size_bytes": len(body), "sha256": sha}
    assert job_files(settings, lease.job_id) == ["attempt-1/epoch-0001.pt"]
    assert client.get(f"/jobs/{lease.job_id}/checkpoints").json() == []

    checkpoint = queue.CheckpointFile(
        epoch=1, file_name="attempt-1/epoch-0001.pt", size_bytes=len(body), sha256=sha, is_best=True
    )
    assert (
        queue.record_epoch(engine, lease=lease, metrics=epoch_metrics(1), progress=0.5, checkpoint=checkpoint)
        == []
    )
    download = client.get(f"/jobs/{lease.job_id}/checkpoints/latest")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == sha


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Content-Digest": content_digest(hashlib.sha256(b"other").hexdigest())}, "damaged on the way"),
        ({"Content-Digest": "md5=:AAAA:"}, "Content-Digest: sha-256"),
        ({"Content-Digest": "sha-256=:c2hvcnQ=:"}, "32-byte digest"),
    ],
)
def test_a_body_that_does_not_match_its_digest_is_refused_and_leaves_no_file(
    client: TestClient, engine: Engine, settings: Settings, headers: dict[str, str], message: str
) -> None:
    lease = running(engine)
    response = client.put(
        f"/jobs/{lease.job_id}/attempts/1/files/epoch-0001.pt", content=b"x" * 5000, headers=headers
    )
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert job_files(settings, lease.job_id) == []


def test_an_upload_of_an_attempt_that_lost_the_job_is_refused(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    lease = running(engine)
    assert queue.release(engine, lease=lease, resume_file=None, resume_sha256=None, runtime_seconds=1.0)
    assert (
        queue.claim(engine, worker_id="other", lease_seconds=60, capabilities=ONE_CPU) is not None
    )  # attempt 2
    response = put(client, f"/jobs/{lease.job_id}/attempts/1/files/epoch-0001.pt", b"stale" * 100)
    assert response.status_code == 409
    assert "attempt 1 no longer holds this job" in response.json()["detail"]
    assert job_files(settings, lease.job_id) == []

    queue.cancel(engine, job_id=lease.job_id)
    ended = put(client, f"/jobs/{lease.job_id}/attempts/2/files/epoch-0001.pt", b"late" * 100)
    assert ended.status_code == 409


@pytest.mark.parametrize("name", [".hidden.pt", "epoch-0001.pt.tmp", "a" * 200, "-x.pt"])
def test_file_names_are_plain(client: TestClient, engine: Engine, name: str) -> None:
    lease = running(engine)
    response = put(client, f"/jobs/{lease.job_id}/attempts/1/files/{name}", b"x")
    assert response.status_code == 422
    assert "must match" in response.json()["detail"]


def test_later_uploads_remove_the_files_rows_no_longer_list(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    lease = running(engine)
    unlisted = 0
    for epoch in (1, 2, 3):
        body = f"epoch {epoch}".encode() * 100
        name = f"epoch-{epoch:04d}.pt"
        assert put(client, f"/jobs/{lease.job_id}/attempts/1/files/{name}", body).status_code == 201
        checkpoint = queue.CheckpointFile(
            epoch=epoch,
            file_name=f"attempt-1/{name}",
            size_bytes=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            is_best=epoch == 1,
        )
        unneeded = list_checkpoint(engine, lease=lease, checkpoint=checkpoint)
        assert unneeded is not None
        unlisted += len(unneeded)
    # Epoch 2 stopped being listed when epoch 3 was (epoch 1 is the best); the API learns of it
    # at the attempt's next upload, here its log.
    assert unlisted == 1
    assert "attempt-1/epoch-0002.pt" in job_files(settings, lease.job_id)
    assert put(client, f"/jobs/{lease.job_id}/attempts/1/log", b"done\n").status_code == 204
    assert job_files(settings, lease.job_id) == [
        "attempt-1/epoch-0001.pt",
        "attempt-1/epoch-0003.pt",
        "logs/attempt-1.log",
    ]


def test_the_log_is_accepted_until_a_later_attempt_starts(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    lease = running(engine)
    url = f"/jobs/{lease.job_id}/attempts/1/log"
    assert put(client, url, b"epoch 1\n").status_code == 204
    assert put(client, url, b"epoch 1\nepoch 2\n").status_code == 204
    assert queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=COMPLETED)
    assert put(client, url, b"epoch 1\nepoch 2\ndone\n").status_code == 204
    assert client.get(f"/jobs/{lease.job_id}/logs").text == "epoch 1\nepoch 2\ndone\n"

    other = running(engine)
    assert queue.release(engine, lease=other, resume_file=None, resume_sha256=None, runtime_seconds=0.0)
    assert queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU) is not None
    assert put(client, f"/jobs/{other.job_id}/attempts/1/log", b"stale\n").status_code == 409


def test_a_log_larger_than_the_cap_is_refused(client: TestClient, engine: Engine, settings: Settings) -> None:
    lease = running(engine)
    body = b"x" * (settings.max_log_bytes + 65 * 1024)
    response = put(client, f"/jobs/{lease.job_id}/attempts/1/log", body)
    assert response.status_code == 413
    assert job_files(settings, lease.job_id) == []


def test_workers_fetch_listed_files_with_their_digest(client: TestClient, engine: Engine) -> None:
    lease = running(engine)
    body = b"resume" * 1000
    sha = hashlib.sha256(body).hexdigest()
    url = f"/jobs/{lease.job_id}/attempts/1/files/resume.pt"
    assert put(client, url, body).status_code == 201
    assert client.get(url).status_code == 404  # uploaded, not listed
    assert queue.release(
        engine, lease=lease, resume_file="attempt-1/resume.pt", resume_sha256=sha, runtime_seconds=1.0
    )
    fetched = client.get(url)
    assert fetched.status_code == 200
    assert fetched.content == body
    assert fetched.headers["content-digest"] == content_digest(sha)


@pytest.fixture
def keyed_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    keyed = settings.model_copy(update={"api_keys": SecretStr(f"worker:{WORKER_KEY},alice:{ALICE_KEY}")})
    with TestClient(create_app(keyed)) as client:
        yield client


def test_only_the_worker_key_uploads_and_fetches(
    keyed_client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    lease = running(engine)
    url = f"/jobs/{lease.job_id}/attempts/1/files/epoch-0001.pt"
    alice = put(keyed_client, url, b"x" * 100, Authorization=f"Bearer {ALICE_KEY}")
    assert alice.status_code == 403
    assert "owner is 'worker'" in alice.json()["detail"]
    assert keyed_client.get(url, headers={"Authorization": f"Bearer {ALICE_KEY}"}).status_code == 403
    assert put(keyed_client, url, b"x" * 100).status_code == 401
    assert put(keyed_client, url, b"x" * 100, Authorization=f"Bearer {WORKER_KEY}").status_code == 201


def test_without_keys_only_this_machine_uploads_even_when_others_may_read(
    settings: Settings, engine: Engine
) -> None:
    lease = running(engine)
    open_to_all = settings.model_copy(update={"allow_anonymous": True})
    with TestClient(create_app(open_to_all), client=("192.0.2.7", 40000)) as remote:
        assert remote.get(f"/jobs/{lease.job_id}").status_code == 200
        response = put(remote, f"/jobs/{lease.job_id}/attempts/1/files/epoch-0001.pt", b"x" * 100)
    assert response.status_code == 403
    assert "only workers on the API's machine" in response.json()["detail"]
