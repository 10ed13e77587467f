"""API keys, owners and hostile requests, against the app in-process."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine

from app import queue
from app.main import create_app
from app.security import Authenticator, is_loopback, is_remote_peer, parse_api_keys, uvicorn_bind_host
from app.settings import Settings
from tests.factories import ONE_CPU, list_checkpoint
from tests.support.keys import ADMIN, ALICE, BOB, auth


def test_api_keys_parse_from_owner_key_pairs() -> None:
    assert parse_api_keys(f"alice:{ALICE}, bob:{BOB}\n# comment\n") == {ALICE: "alice", BOB: "bob"}


@pytest.mark.parametrize(
    "text",
    [
        "alice",
        f":{ALICE}",
        "alice:short",
        f"alice:{ALICE},bob:{ALICE}",
        f"al ice:{ALICE}",
        "alice:" + "x y" * 9,
    ],
)
def test_bad_api_key_settings_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="key"):
        parse_api_keys(text)


def test_keys_can_come_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"alice:{ALICE}\nbob:{BOB}\n")
    assert Settings(api_keys_file=path).api_key_owners() == {ALICE: "alice", BOB: "bob"}
    with pytest.raises(ValidationError, match="cannot be read"):
        Settings(api_keys_file=tmp_path / "missing")


def test_the_authenticator_finds_the_owner_only_for_an_exact_bearer_key() -> None:
    authenticator = Authenticator({ALICE: "alice", ADMIN: "admin"})
    assert authenticator.authenticate(f"Bearer {ALICE}").owner == "alice"  # type: ignore[union-attr]
    assert authenticator.authenticate(f"Bearer {ADMIN}").sees_all  # type: ignore[union-attr]
    for header in (None, "", ALICE, f"Basic {ALICE}", f"Bearer {ALICE}x", f"Bearer {ALICE[:-1]}", "Bearer "):
        assert authenticator.authenticate(header) is None


def test_health_needs_no_key(keyed: TestClient) -> None:
    assert keyed.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/jobs"),
        ("post", "/jobs"),
        ("get", "/jobs/x"),
        ("get", "/jobs/x/metrics"),
        ("post", "/jobs/x/cancel"),
        ("get", "/jobs/x/checkpoints"),
        ("get", "/jobs/x/checkpoints/best"),
        ("get", "/workers"),
        ("get", "/openapi.json"),
        ("get", "/docs"),
    ],
)
def test_every_other_endpoint_needs_a_valid_key(keyed: TestClient, method: str, path: str) -> None:
    missing = keyed.request(method, path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = keyed.request(method, path, headers=auth("not-a-key-0123456789"))
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert keyed.request(method, path, headers=auth(ALICE)).status_code != 401


def test_jobs_belong_to_the_owner_of_the_key_that_submitted_them(keyed: TestClient) -> None:
    job = keyed.post("/jobs", json={"name": "alice's"}, headers=auth(ALICE)).json()
    assert job["owner"] == "alice"
    assert keyed.get(f"/jobs/{job['id']}", headers=auth(ALICE)).status_code == 200
    assert [j["id"] for j in keyed.get("/jobs", headers=auth(ALICE)).json()["items"]] == [job["id"]]


def test_another_owner_gets_404_for_every_job_endpoint_and_an_empty_list(
    keyed: TestClient, engine: Engine, settings: Settings
) -> None:
    job_id = keyed.post("/jobs", json={}, headers=auth(ALICE)).json()["id"]
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    (settings.artifacts_dir / job_id).mkdir(parents=True)
    (settings.artifacts_dir / job_id / "epoch-0001.pt").write_bytes(b"weights")
    list_checkpoint(
        engine,
        lease=lease,
        checkpoint=queue.CheckpointFile(
            epoch=1,
            file_name="epoch-0001.pt",
            size_bytes=7,
            sha256=hashlib.sha256(b"weights").hexdigest(),
            is_best=True,
        ),
    )
    for method, path in [
        ("get", f"/jobs/{job_id}"),
        ("get", f"/jobs/{job_id}/metrics"),
        ("get", f"/jobs/{job_id}/checkpoints"),
        ("get", f"/jobs/{job_id}/checkpoints/best"),
        ("get", f"/jobs/{job_id}/checkpoints/1"),
        ("post", f"/jobs/{job_id}/cancel"),
    ]:
        response = keyed.request(method, path, headers=auth(BOB))
        assert response.status_code == 404, (method, path)
        assert keyed.request(method, path, headers=auth(ALICE)).status_code == 200, (method, path)
    assert keyed.get("/jobs", headers=auth(BOB)).json()["items"] == []


def test_admin_sees_and_manages_every_owners_jobs(keyed: TestClient) -> None:
    alices = keyed.post("/jobs", json={}, headers=auth(ALICE)).json()["id"]
    bobs = keyed.post("/jobs", json={}, headers=auth(BOB)).json()["id"]
    listed = {j["id"] for j in keyed.get("/jobs", headers=auth(ADMIN)).json()["items"]}
    assert listed == {alices, bobs}
    assert keyed.post(f"/jobs/{bobs}/cancel", headers=auth(ADMIN)).json()["status"] == "cancelled"


def test_idempotency_keys_are_per_owner(keyed: TestClient) -> None:
    key = {"Idempotency-Key": "nightly"}
    first = keyed.post("/jobs", json={"name": "a"}, headers={**auth(ALICE), **key})
    other = keyed.post("/jobs", json={"name": "b"}, headers={**auth(BOB), **key})
    assert (first.status_code, other.status_code) == (201, 201)
    assert first.json()["id"] != other.json()["id"]


def test_bodies_over_the_limit_get_413_before_parsing(client: TestClient) -> None:
    huge = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post("/jobs", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_streamed_bodies_over_the_limit_get_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    response = client.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def peer(settings: Settings, address: str) -> TestClient:
    return TestClient(create_app(settings), client=(address, 40000))


# Job data, the dashboard and /health (whose problems name jobs) alike.
ANONYMOUS_READS = ["/jobs", "/metrics", "/health", "/", "/openapi.json"]


def test_without_keys_a_request_from_another_machine_is_refused_with_how_to_set_keys(
    settings: Settings, engine: Engine
) -> None:
    with peer(settings, "192.0.2.7") as remote:
        for path in ANONYMOUS_READS:
            response = remote.get(path)
            assert response.status_code == 403, path
            assert "TRAINQ_API_KEYS" in response.json()["detail"]
        assert remote.post("/jobs", json={}).status_code == 403


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_without_keys_a_request_from_this_machine_is_answered(
    settings: Settings, engine: Engine, address: str
) -> None:
    with peer(settings, address) as local:
        assert [local.get(path).status_code for path in ANONYMOUS_READS] == [200] * len(ANONYMOUS_READS)


def test_allow_anonymous_answers_every_machine_and_keys_answer_any_machine_that_has_one(
    settings: Settings, engine: Engine
) -> None:
    with peer(settings.model_copy(update={"allow_anonymous": True}), "192.0.2.7") as remote:
        assert remote.get("/jobs").status_code == 200
    with peer(settings.model_copy(update={"api_keys": SecretStr(f"alice:{ALICE}")}), "192.0.2.7") as remote:
        assert remote.get("/jobs").status_code == 401
        assert remote.get("/jobs", headers=auth(ALICE)).status_code == 200


@pytest.mark.parametrize(
    ("client", "remote"),
    [
        (("192.0.2.7", 1), True),
        (("2001:db8::1", 1), True),
        (("::ffff:192.0.2.7", 1), True),
        (("127.0.0.1", 1), False),
        (("::1", 1), False),
        (("::ffff:127.0.0.1", 1), False),
        (None, False),  # a unix socket
        (("testclient", 50000), False),  # in-process: no network address at all
    ],
)
def test_only_a_non_loopback_ip_address_is_a_remote_peer(
    client: tuple[str, int] | None, remote: bool
) -> None:
    assert is_remote_peer(client) is remote


@pytest.mark.parametrize(
    ("argv", "env", "host"),
    [
        (["uvicorn", "app.main:app"], {}, "127.0.0.1"),
        (["uvicorn", "app.main:app", "--host", "0.0.0.0"], {}, "0.0.0.0"),
        (["uvicorn", "app.main:app", "--host=::"], {}, "::"),
        (["uvicorn", "app.main:app"], {"UVICORN_HOST": "10.0.0.5"}, "10.0.0.5"),
        (["uvicorn", "app.main:app", "--uds", "/run/trainq.sock"], {}, None),
    ],
)
def test_the_bind_address_is_read_from_uvicorns_arguments(
    argv: list[str], env: dict, host: str | None
) -> None:
    assert uvicorn_bind_host(argv, env) == host


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_only_loopback_addresses_count_as_local(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
