"""deploy/nginx.conf with a real nginx before a real API and worker: downloads sent by nginx."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Service, running_service
from tests.support.keys import ALICE, BOB, KEYED_OWNERS, auth
from tests.support.nginx import nginx_in_front


@dataclass(frozen=True)
class Deployment:
    service: Service
    nginx: httpx.Client
    job_id: str
    checkpoint: dict


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    state_dir = tmp_path_factory.mktemp("nginx")
    settings = {"TRAINQ_API_KEYS": KEYED_OWNERS, "TRAINQ_ACCEL_REDIRECT_PREFIX": "/_artifacts/"}
    with running_service(state_dir / "service", api_key=ALICE, **settings) as service:
        service.start_worker()
        job = service.wait_until_final(service.submit("behind nginx", dataset="digits", epochs=1))
        assert job["status"] == "succeeded", job
        artifacts = Path(service.env["TRAINQ_ARTIFACTS_DIR"])
        with (
            nginx_in_front(str(service.http.base_url), artifacts, state_dir / "nginx") as base_url,
            httpx.Client(base_url=base_url, timeout=30) as nginx,
        ):
            yield Deployment(service, nginx, job["id"], job["checkpoints"][0])


def test_nginx_sends_the_checkpoint_the_api_names(deployment: Deployment) -> None:
    url = f"/jobs/{deployment.job_id}/checkpoints/latest"
    direct = deployment.service.http.get(url)
    assert direct.content == b"" and direct.headers["x-accel-redirect"].startswith("/_artifacts/")
    sent = deployment.nginx.get(url, headers=auth(ALICE))
    assert sent.status_code == 200, sent.text
    assert hashlib.sha256(sent.content).hexdigest() == deployment.checkpoint["sha256"]
    assert len(sent.content) == deployment.checkpoint["size_bytes"]
    assert sent.headers["etag"] == f'"{deployment.checkpoint["sha256"]}"'
    assert sent.headers["content-disposition"] == direct.headers["content-disposition"]
    assert sent.headers["content-type"] == "application/octet-stream"
    assert "x-accel-redirect" not in sent.headers


def test_nginx_answers_ranges_and_the_api_answers_if_none_match(deployment: Deployment) -> None:
    url = f"/jobs/{deployment.job_id}/checkpoints/latest"
    whole = deployment.nginx.get(url, headers=auth(ALICE)).content
    first = deployment.nginx.get(url, headers={**auth(ALICE), "Range": "bytes=0-99"})
    rest = deployment.nginx.get(url, headers={**auth(ALICE), "Range": "bytes=100-"})
    assert (first.status_code, rest.status_code) == (206, 206)
    assert first.headers["content-range"] == f"bytes 0-99/{len(whole)}"
    assert first.content + rest.content == whole
    etag = deployment.nginx.get(url, headers=auth(ALICE)).headers["etag"]
    assert deployment.nginx.get(url, headers={**auth(ALICE), "If-None-Match": etag}).status_code == 304


def test_the_files_are_not_reachable_around_the_api(deployment: Deployment) -> None:
    url = f"/jobs/{deployment.job_id}/checkpoints/latest"
    assert deployment.nginx.get(url).status_code == 401
    assert deployment.nginx.get(url, headers=auth(BOB)).status_code == 404
    direct = deployment.service.http.get(url).headers["x-accel-redirect"]
    assert deployment.nginx.get(direct, headers=auth(ALICE)).status_code == 404
    assert deployment.nginx.get(direct, headers={"X-Accel-Redirect": direct}).status_code == 404
