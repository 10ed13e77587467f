"""What a worker says it has: TRAINQ_WORKER_LABELS, TRAINQ_WORKER_DEVICES and detection, without torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.resources import Capabilities, DeviceCounts
from app.settings import Settings
from tests.support.processes import REPO_ROOT, service_env
from worker import devices


def test_worker_labels_are_read_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINQ_WORKER_LABELS", " a100, fast,,fast ")
    assert Settings().worker_labels == frozenset({"a100", "fast"})
    monkeypatch.setenv("TRAINQ_WORKER_LABELS", "")
    assert Settings().worker_labels == frozenset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", DeviceCounts()),
        ("cuda:4", DeviceCounts(cuda=4)),
        ("cpu:2", DeviceCounts(cpu=2)),
        (" cuda:4 , cpu:16 ", DeviceCounts(cuda=4, cpu=16)),
        ("cpu:16,cuda:0", DeviceCounts(cuda=0, cpu=16)),
    ],
)
def test_worker_devices_name_counts_of_either_kind(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: DeviceCounts
) -> None:
    monkeypatch.setenv("TRAINQ_WORKER_DEVICES", text)
    assert Settings().worker_devices == expected


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("TRAINQ_WORKER_DEVICES", "gpu:4", "'gpu:4' is not kind:count with kind cuda or cpu"),
        ("TRAINQ_WORKER_DEVICES", "cuda", "'cuda' is not kind:count"),
        ("TRAINQ_WORKER_DEVICES", "cuda:-1", "'cuda:-1' is not kind:count"),
        ("TRAINQ_WORKER_DEVICES", "cuda:two", "'cuda:two' is not kind:count"),
        ("TRAINQ_WORKER_DEVICES", "cuda:1,cuda:2", "cuda is given twice"),
        ("TRAINQ_WORKER_DEVICES", "cpu:5000", "at most 4096 devices of a kind"),
        ("TRAINQ_WORKER_LABELS", "A100", "label 'A100' is not valid"),
        ("TRAINQ_WORKER_LABELS", "fast,gpu a100", "label 'gpu a100' is not valid"),
    ],
)
def test_bad_worker_settings_are_refused_with_what_to_change(
    monkeypatch: pytest.MonkeyPatch, variable: str, text: str, message: str
) -> None:
    monkeypatch.setenv(variable, text)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_a_worker_with_bad_worker_devices_stops_at_start_with_one_line(tmp_path: Path) -> None:
    env = service_env(tmp_path, TRAINQ_WORKER_DEVICES="gpu:4")
    done = subprocess.run(
        [sys.executable, "-m", "worker"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr == (
        "trainq worker: invalid settings: TRAINQ_WORKER_DEVICES: 'gpu:4' is not kind:count with kind cuda "
        "or cpu (e.g. cuda:4 or cpu:16 or cuda:4,cpu:16)\n"
    )


@pytest.mark.parametrize(
    ("visible", "count"),
    [
        ("0,1,2", 3),
        ("3", 1),
        ("", 0),
        ("-1", 0),
        ("NoDevFiles", 0),
        ("0,-1,1", 1),  # CUDA stops at the first entry that is not a device
        ("GPU-8f2a1c3e-1111-2222-3333-444455556666,GPU-0a1b2c3d-1111-2222-3333-444455556666", 2),
        ("MIG-GPU-8f2a1c3e-1111-2222-3333-444455556666/1/0", 1),
    ],
)
def test_cuda_visible_devices_decides_the_gpu_count_when_set(
    tmp_path: Path, visible: str, count: int
) -> None:
    proc = tmp_path / "gpus"
    (proc / "0000:01:00.0").mkdir(parents=True)
    assert devices.count_gpus({"CUDA_VISIBLE_DEVICES": visible}, proc_gpus=proc, nvidia_smi=None) == count


def test_without_cuda_visible_devices_gpus_are_counted_from_the_driver(tmp_path: Path) -> None:
    proc = tmp_path / "gpus"
    for bus in ("0000:01:00.0", "0000:41:00.0"):
        (proc / bus).mkdir(parents=True)
    assert devices.count_gpus({}, proc_gpus=proc, nvidia_smi=None) == 2

    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-1)'\necho '  MIG 1g.18gb Device 0: (UUID: MIG-1)'\n"
        "echo 'GPU 1: NVIDIA H200 (UUID: GPU-2)'\n"
    )
    smi.chmod(0o755)
    assert devices.count_gpus({}, proc_gpus=tmp_path / "absent", nvidia_smi=str(smi)) == 2
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert devices.count_gpus({}, proc_gpus=tmp_path / "absent", nvidia_smi=str(smi)) == 0
    assert devices.count_gpus({}, proc_gpus=tmp_path / "absent", nvidia_smi=str(tmp_path / "none")) == 0


def test_worker_devices_replace_the_detected_count_of_each_kind_they_name() -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "0,1"}
    cpus = len(os.sched_getaffinity(0))
    detected = devices.capabilities(Settings(worker_labels="fast"), environ)
    assert detected == Capabilities(cuda_devices=2, cpu_devices=cpus, labels=frozenset({"fast"}))
    only_cuda = devices.capabilities(Settings(worker_devices="cuda:8"), environ)
    assert (only_cuda.cuda_devices, only_cuda.cpu_devices) == (8, cpus)
    both = devices.capabilities(Settings(worker_devices="cuda:0,cpu:3"), environ)
    assert (both.cuda_devices, both.cpu_devices) == (0, 3)


def test_memory_comes_from_meminfo_and_else_from_the_page_count(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       131900000 kB\nMemFree:         1000 kB\n")
    assert devices.memory_bytes(meminfo) == 131_900_000 * 1024
    expected = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert devices.memory_bytes(tmp_path / "absent") == expected > 0


def test_the_worker_finds_what_it_has_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from app.settings import Settings\n"
        "import worker.devices, worker.claim_loop\n"
        "worker.devices.capabilities(Settings()), worker.devices.memory_bytes()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
