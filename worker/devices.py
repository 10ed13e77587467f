"""What this worker has: GPUs, CPUs, memory and labels, found without importing torch.

The claim loop and the fork server's preload stay torch-free (a worker starts in a second and
holds no CUDA context), so GPUs are counted the way the driver exposes them:
CUDA_VISIBLE_DEVICES when it is set (what torch would see), else the driver's
/proc/driver/nvidia/gpus/ entries, else `nvidia-smi -L`, else none. TRAINQ_WORKER_DEVICES
replaces the count of each kind it names.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from app.resources import Capabilities
from app.settings import Settings

logger = logging.getLogger(__name__)

NVIDIA_PROC_GPUS = Path("/proc/driver/nvidia/gpus")
MEMINFO = Path("/proc/meminfo")
NVIDIA_SMI_TIMEOUT_S = 10.0
# How CUDA names a visible device: an index, or a GPU's or MIG instance's UUID.
_CUDA_DEVICE = re.compile(r"\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+")


def capabilities(settings: Settings, environ: Mapping[str, str] | None = None) -> Capabilities:
    """This worker's devices (detected, or as TRAINQ_WORKER_DEVICES says) and labels."""
    override = settings.worker_devices
    cuda = (
        override.cuda if override.cuda is not None else count_gpus(os.environ if environ is None else environ)
    )
    cpu = override.cpu if override.cpu is not None else count_cpus()
    return Capabilities(cuda_devices=cuda, cpu_devices=cpu, labels=settings.worker_labels)


def count_gpus(
    environ: Mapping[str, str],
    *,
    proc_gpus: Path = NVIDIA_PROC_GPUS,
    nvidia_smi: str | None = "nvidia-smi",
) -> int:
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return count_visible(visible)
    if proc_gpus.is_dir():
        return sum(1 for entry in proc_gpus.iterdir() if entry.is_dir())
    command = shutil.which(nvidia_smi) if nvidia_smi else None
    if command is None:
        return 0
    try:
        listed = subprocess.run(
            [command, "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("nvidia-smi -L failed (%s): counting no GPUs", exc)
        return 0
    return sum(1 for line in listed.splitlines() if line.startswith("GPU "))


def count_visible(value: str) -> int:
    """CUDA's rule: the devices listed before the first entry that is not a device ('', '-1',
    'NoDevFiles' all hide every GPU)."""
    count = 0
    for entry in value.split(","):
        if not _CUDA_DEVICE.fullmatch(entry.strip()):
            break
        count += 1
    return count


def count_cpus() -> int:
    """The CPUs this process may run on (its affinity: taskset, cpusets), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_bytes(meminfo: Path = MEMINFO) -> int:
    """The machine's memory: MemTotal from /proc/meminfo, else pages x page size, else 0."""
    try:
        for line in meminfo.read_text().splitlines():
            name, _, value = line.partition(":")
            if name == "MemTotal" and value.split()[1:] == ["kB"]:
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return 0


def trainq_version() -> str:
    try:
        return importlib.metadata.version("trainq")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
