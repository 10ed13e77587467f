"""The safe default and key handling, with a real uvicorn process."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.main import authenticator_for
from app.settings import Settings
from tests.support.polling import wait_for
from tests.support.processes import ServiceProcess, free_port, service_env, start_api

KEY = "alice-secret-key-0123456789"
SMALLEST_BODY_LIMIT = 1024


@pytest.fixture
def network_address() -> str:
    """This machine's non-loopback IPv4 address, to send a request from another machine's point of view."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # connecting a UDP socket only picks a route: nothing is sent
        except OSError:
            pytest.skip("this machine has no route off loopback")
        address = str(probe.getsockname()[0])
    if ipaddress.ip_address(address).is_loopback:
        pytest.skip("this machine has no non-loopback address")
    return address


@pytest.fixture
def api_started_from_python(tmp_path: Path) -> Iterator[int]:
    """An API without keys on every address, started by a script: uvicorn's arguments are not in argv."""
    env = service_env(tmp_path)
    env.pop("TRAINQ_API_KEYS", None)
    port = free_port()
    script = f"import uvicorn; uvicorn.run('app.main:app', host='0.0.0.0', port={port})"
    api = ServiceProcess([sys.executable, "-c", script], env, tmp_path / "api.log")

    def healthy() -> bool:
        assert api.process.poll() is None, api.log()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout_s=30, what="the API to answer /health")
        yield port
    finally:
        api.stop()


def test_without_keys_the_api_refuses_to_start_on_a_public_address(tmp_path: Path) -> None:
    env = service_env(tmp_path)
    env.pop("TRAINQ_API_KEYS", None)
    api = ServiceProcess(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", str(free_port())],
        env,
        tmp_path / "api.log",
    )
    assert api.wait(timeout_s=60) != 0
    log = api.log()
    assert "refusing to serve 0.0.0.0 without API keys" in log
    assert "TRAINQ_API_KEYS" in log


def test_allow_anonymous_overrides_the_refusal_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "argv", ["uvicorn", "app.main:app", "--host", "0.0.0.0"])
    with pytest.raises(RuntimeError, match="refusing to serve"):
        authenticator_for(Settings())
    assert authenticator_for(Settings(allow_anonymous=True)) is None
    assert "WITHOUT API keys" in caplog.text


def test_keys_are_required_over_http_and_never_logged(tmp_path: Path) -> None:
    env = service_env(tmp_path, TRAINQ_API_KEYS=f"alice:{KEY}")
    api, base_url = start_api(tmp_path, env, tmp_path)
    try:
        assert httpx.get(f"{base_url}/jobs").status_code == 401
        assert (
            httpx.get(
                f"{base_url}/jobs", headers={"Authorization": "Bearer wrong-key-0123456789"}
            ).status_code
            == 401
        )
        assert httpx.get(f"{base_url}/jobs", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    finally:
        api.stop()
    log = api.log()
    assert "GET /jobs" in log
    assert KEY not in log
    assert "wrong-key" not in log


def test_without_keys_a_server_started_past_the_argv_check_still_answers_only_this_machine(
    network_address: str, api_started_from_python: int
) -> None:
    address, port = network_address, api_started_from_python
    assert httpx.get(f"http://127.0.0.1:{port}/jobs").status_code == 200
    for path in ("/jobs", "/health", "/"):
        remote = httpx.get(f"http://{address}:{port}{path}")
        assert remote.status_code == 403, (path, remote.text)
        assert "TRAINQ_API_KEYS" in remote.json()["detail"]
    # A reverse proxy on this machine that says whom it forwards for (uvicorn trusts 127.0.0.1).
    proxied = httpx.get(f"http://127.0.0.1:{port}/jobs", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 403


def send_raw(port: int, request: bytes) -> bytes:
    """What the server answers before it closes the connection (a reset after the answer is fine)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    return received


@pytest.mark.parametrize("path", ["/", "/ui/index.html"])
def test_a_streamed_body_over_the_limit_to_an_open_page_gets_413_and_one_log_line(
    tmp_path: Path, path: str
) -> None:
    env = service_env(tmp_path, TRAINQ_MAX_BODY_BYTES=str(SMALLEST_BODY_LIMIT))
    api, base_url = start_api(tmp_path, env, tmp_path)
    try:
        logged_before = len(api.log().splitlines())
        chunk = b"x" * SMALLEST_BODY_LIMIT
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4))
        head = f"GET {path} HTTP/1.1\r\nHost: trainq\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        answer = send_raw(int(base_url.rsplit(":", 1)[1]), head + chunks + b"0\r\n\r\n")
        # Once the server has closed the connection, it has logged all it will about the request.
        logged = api.log().splitlines()[logged_before:]
    finally:
        api.stop()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert len(logged) <= 1, "\n".join(logged)
