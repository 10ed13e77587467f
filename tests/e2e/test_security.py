"""The safe default and key handling, with a real uvicorn process."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from app.main import authenticator_for
from app.settings import Settings
from tests.support.processes import ServiceProcess, free_port, service_env, start_api

KEY = "alice-secret-key-0123456789"


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
