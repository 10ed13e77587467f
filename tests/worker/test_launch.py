"""What the launcher gives a multi-device job's ranks."""

from __future__ import annotations

from worker.launch import pinned_gpus


def test_a_cuda_job_gets_the_first_of_the_workers_own_gpus() -> None:
    assert pinned_gpus("2,3,5", 2, "cuda") == {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert pinned_gpus("GPU-aa, GPU-bb", 2, "cuda") == {"CUDA_VISIBLE_DEVICES": "GPU-aa,GPU-bb"}


def test_a_worker_that_sees_every_gpu_gives_a_job_the_first_ones() -> None:
    assert pinned_gpus(None, 3, "cuda") == {"CUDA_VISIBLE_DEVICES": "0,1,2"}


def test_a_cpu_job_leaves_the_gpus_alone() -> None:
    assert pinned_gpus("0,1", 2, "cpu") == {}
