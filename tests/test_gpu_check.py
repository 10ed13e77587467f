"""bench/gpu_check.py drives the same path on CPU, so the script cannot rot between GPU runs."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.processes import REPO_ROOT

CPU_RUN = [
    "--device",
    "cpu",
    "--amp",
    "off",
    "--epochs",
    "1",
    "--samples",
    "256",
    "--model",
    "mlp",
    "--devices",
    "1",
    "2",
]


def test_the_gpu_check_script_trains_on_one_and_two_devices_and_loads_the_checkpoints_on_cpu() -> None:
    # Run as in the image, where the container's environment has the real service's keys.
    env = {**os.environ, "TRAINQ_API_KEYS": "admin:a-key-for-the-real-service-0123"}
    result = subprocess.run(
        [sys.executable, "bench/gpu_check.py", *CPU_RUN],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "amp=off: succeeded on cpu (fp32) with 1 device(s)" in result.stdout
    assert "amp=off: succeeded on cpu (fp32) with 2 device(s)" in result.stdout
    assert result.stdout.count("best checkpoint loads on CPU") == 2
    assert "amp=off: 2 devices train" in result.stdout
