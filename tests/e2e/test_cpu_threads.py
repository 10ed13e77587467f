"""A job records the CPU threads its training process used: TRAINQ_CPU_THREADS when set, else
the worker's CPUs shared among the live workers on its host."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Service
from tests.support.polling import wait_for
from worker.devices import count_cpus

DIGITS = {"dataset": "digits", "model": "small_cnn", "epochs": 1, "batch_size": 128}


def finished_threads(service: Service) -> dict:
    job = service.wait_until_final(service.submit(**DIGITS))
    assert job["status"] == "succeeded", job
    return dict(job["cpu_threads"])


def test_a_finished_job_shows_the_threads_trainq_cpu_threads_gave_it(service: Service) -> None:
    service.start_worker(TRAINQ_CPU_THREADS="3")
    assert finished_threads(service) == {"intra_op": 3, "inter_op": 3}


@pytest.mark.skipif(count_cpus() < 2, reason="one CPU cannot be shared out any further")
def test_a_second_worker_on_the_host_halves_the_share_of_the_next_job(service: Service) -> None:
    cpus = count_cpus()  # the workers inherit this process's affinity
    service.start_worker()
    assert finished_threads(service) == {"intra_op": cpus, "inter_op": cpus}

    service.start_worker()
    wait_for(
        lambda: [w["workers_on_host"] for w in service.http.get("/workers").json()] == [2, 2],
        timeout_s=60,
        what="both workers to be registered on the host",
    )
    assert finished_threads(service) == {"intra_op": cpus // 2, "inter_op": cpus // 2}
