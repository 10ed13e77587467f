"""The Docker files, checked without a Docker engine: docker-compose config, hadolint,
and the commands the image runs against the ones the tests start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.processes import API_COMMAND, HEALTH_PATH, REPO_ROOT, WORKER_COMMAND

COMPOSE_FILES = ["docker-compose.yml", "docker-compose.multi-gpu.yml"]


def require_tool(name: str) -> str:
    path = shutil.which(name) or (
        str(Path(sys.executable).parent / name) if (Path(sys.executable).parent / name).exists() else None
    )
    if path is None:
        message = f"{name} is not installed (.ci/run installs Debian's docker-compose)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def compose_config(tmp_path: Path, *files: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """docker-compose config on copies of the files, with .env made from .env.example."""
    for name in files:
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    dotenv = (REPO_ROOT / ".env.example").read_text()
    dotenv += "".join(f"\n{key}={value}" for key, value in (env or {}).items())
    (tmp_path / ".env").write_text(dotenv)
    args = [
        require_tool("docker-compose"),
        *(arg for name in files for arg in ("-f", str(tmp_path / name))),
        "config",
    ]
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


def dockerfile_instruction(name: str) -> list[str]:
    lines = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    (line,) = [line for line in lines if line.startswith(f"{name} ")]
    return list(json.loads(line[line.index("[") :]))


@pytest.mark.parametrize("files", [COMPOSE_FILES[:1], COMPOSE_FILES], ids=["base", "multi-gpu"])
def test_each_compose_file_validates(tmp_path: Path, files: list[str]) -> None:
    assert "api" in compose_config(tmp_path, *files)["services"]


def test_the_worker_reserves_the_gpu_named_in_env(tmp_path: Path) -> None:
    config = compose_config(tmp_path, "docker-compose.yml", env={"TRAINQ_GPU": "3"})
    (device,) = config["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "device_ids": ["3"], "capabilities": ["gpu"]}
    assert "deploy" not in config["services"]["worker-cpu"]
    assert config["services"]["worker"]["profiles"] == ["gpu"]
    assert config["services"]["worker-cpu"]["profiles"] == ["cpu"]


def test_the_services_share_state_restart_and_wait_for_a_healthy_api(tmp_path: Path) -> None:
    config = compose_config(tmp_path, "docker-compose.yml", env={"TRAINQ_PORT": "9100"})
    services = config["services"]
    assert "trainq-state" in config["volumes"]
    for name in ("api", "worker", "worker-cpu"):
        service = services[name]
        assert service["restart"] == "unless-stopped"
        assert "trainq-state:/var/lib/trainq:rw" in service["volumes"]
        assert any(volume.endswith(":/data:rw") for volume in service["volumes"])
        assert service["environment"]["TRAINQ_API_KEYS"] == ""  # from .env, to be filled in
    assert services["api"]["ports"] == [{"published": 9100, "target": 8000}]
    for name in ("worker", "worker-cpu"):
        assert services[name]["depends_on"] == {"api": {"condition": "service_healthy"}}
        assert services[name]["shm_size"] == "8gb"
        grace = services[name]["stop_grace_period"]
        assert grace.endswith("m") and int(grace[:-1]) >= 1, "graceful shutdown needs time"


def test_the_extra_gpu_workers_are_the_base_worker_on_other_gpus(tmp_path: Path) -> None:
    services = compose_config(tmp_path, *COMPOSE_FILES)["services"]
    base = {key: value for key, value in services["worker"].items() if key != "deploy"}
    for index in (1, 2, 3):
        extra = services[f"worker-gpu{index}"]
        assert {key: value for key, value in extra.items() if key != "deploy"} == base
        (device,) = extra["deploy"]["resources"]["reservations"]["devices"]
        assert device["device_ids"] == [str(index)]


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = subprocess.run(
        [require_tool("hadolint"), "--no-color", str(REPO_ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_the_image_runs_the_commands_the_tests_start(tmp_path: Path) -> None:
    services = compose_config(tmp_path, "docker-compose.yml")["services"]
    image_command = dockerfile_instruction("CMD")
    assert image_command[:2] == API_COMMAND
    assert services["api"]["command"] == image_command
    assert services["worker"]["command"] == WORKER_COMMAND
    healthcheck = dockerfile_instruction("HEALTHCHECK")
    assert services["api"]["healthcheck"]["test"] == ["CMD", *healthcheck]
    assert f"8000{HEALTH_PATH}'" in healthcheck[-1]


def test_the_build_context_holds_only_the_code() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") :][:1] == ["*"], "everything is excluded first"
    allowed = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "README.md",
        "app",
        "worker",
        "trainq",
        "bench/gpu_check.py",
        "bench/live_service.py",
    }
    assert {"**/__pycache__", "**/*.pt"} <= set(ignored)
