"""The supervisor against fake training processes: real processes, a real pipe, a real SQLite file.

Each fake plays one training process's part of the protocol (worker/protocol.py) without torch,
so these tests pin down what the supervisor stores for every report and every way a process ends.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select

from app import queue
from app.contract import (
    CheckpointFile,
    ClassMetrics,
    CpuThreads,
    DatasetInfo,
    EvaluationMetrics,
    ExportFile,
    FailureReason,
    RunResults,
    StopReason,
)
from app.models import Checkpoint, EpochMetric, Job, JobCreate, JobStatus
from app.settings import Settings
from tests.factories import COMPLETED, ONE_CPU, epoch_metrics
from tests.support.polling import wait_for
from worker.protocol import (
    EpochEnded,
    Failed,
    Finished,
    LeaseRenewed,
    Progress,
    Started,
    Stop,
    TrainingTask,
)
from worker.supervisor import JobSupervisor, ProcessMain

NEVER_S = 3600.0
SUPERVISED_CPU_THREADS = 3  # what the worker hands each supervised job, told apart from the defaults


def write_checkpoint(task: TrainingTask, epoch: int, name: str | None = None) -> CheckpointFile:
    path = Path(task.checkpoint_dir) / (name or f"epoch-{epoch:04d}.pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    body = f"weights of epoch {epoch}".encode()
    path.write_bytes(body)
    return CheckpointFile(
        epoch=epoch,
        file_name=path.relative_to(task.job_dir).as_posix(),
        size_bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        is_best=True,
    )


def note_pid(task: TrainingTask) -> None:
    Path(task.job_dir).mkdir(parents=True, exist_ok=True)
    (Path(task.job_dir) / "pid").write_text(str(os.getpid()))


# --- fake training processes ----------------------------------------------------


DIGITS = DatasetInfo(
    layout="digits", classes=list("0123456789"), train_samples=9, val_samples=3, test_samples=0
)
EVALUATED = EvaluationMetrics(
    epoch=1,
    loss=0.5,
    accuracy=0.5,
    per_class=[
        ClassMetrics(class_name="0", precision=1.0, recall=0.5, f1=2 / 3, support=2),
        ClassMetrics(class_name="1", precision=0.0, recall=0.0, f1=0.0, support=0),
    ],
    confusion_matrix=[[1, 1], [0, 0]],
)


def trains_two_epochs(conn: Connection, task: TrainingTask) -> None:
    threads = CpuThreads(intra_op=task.cpu_threads, inter_op=task.cpu_threads)
    conn.send(Started(device="cpu", precision="fp32", dataset=DIGITS, cpu_threads=threads))
    conn.send(Progress(epoch=1, fraction=0.25))
    conn.send(EpochEnded(metrics=epoch_metrics(1), fraction=0.5, checkpoint=write_checkpoint(task, 1)))
    conn.send(EpochEnded(metrics=epoch_metrics(2), fraction=1.0, checkpoint=None))
    exported = write_checkpoint(task, 1, name="model.safetensors")
    export = ExportFile(
        name="model.safetensors",
        format="safetensors",
        file_name=exported.file_name,
        size_bytes=exported.size_bytes,
        sha256=exported.sha256,
    )
    results = RunResults(
        stop_reason=StopReason.early_stopping, best_epoch=1, val_metrics=EVALUATED, exports=[export]
    )
    conn.send(Finished(status="early_stopped", results=results))


def diverges(conn: Connection, task: TrainingTask) -> None:
    conn.send(Started(device="cpu", precision="fp32"))
    conn.send(EpochEnded(metrics=epoch_metrics(1), fraction=0.5, checkpoint=None))
    conn.send(Failed(reason=FailureReason.nan_loss, message="epoch 2: the loss became non-finite"))


def exits_without_a_report(conn: Connection, task: TrainingTask) -> None:
    conn.send(Started(device="cpu", precision="fp32"))
    os._exit(3)


def is_killed(conn: Connection, task: TrainingTask) -> None:
    conn.send(Started(device="cpu", precision="fp32"))
    os.kill(os.getpid(), signal.SIGKILL)


def is_killed_with_a_renewal_unread(conn: Connection, task: TrainingTask) -> None:
    conn.send(Started(device="cpu", precision="fp32"))
    conn.poll(NEVER_S)  # a renewal waits in the pipe, unread: the kill resets the connection
    os.kill(os.getpid(), signal.SIGKILL)


def trains_until_stopped(conn: Connection, task: TrainingTask) -> None:
    conn.send(Started(device="cpu", precision="fp32"))
    while not isinstance(conn.recv(), Stop):
        pass
    resume = write_checkpoint(task, 0, name="resume.pt")
    conn.send(Finished(status="interrupted", resume_file=resume.file_name))


def never_ends(conn: Connection, task: TrainingTask) -> None:
    note_pid(task)
    conn.send(Started(device="cpu", precision="fp32"))
    while True:
        time.sleep(NEVER_S)


def waits_for_a_renewal(conn: Connection, task: TrainingTask) -> None:
    conn.send(Started(device="cpu", precision="fp32"))
    while not isinstance(message := conn.recv(), LeaseRenewed):
        pass
    moved_on = message.deadline > task.lease_deadline
    if moved_on:
        conn.send(Finished(status="completed", results=COMPLETED))
    else:
        conn.send(Failed(reason=FailureReason.training_error, message="the deadline did not move"))


# --- harness ----------------------------------------------------------------------


def supervise(
    engine: Engine,
    settings: Settings,
    fake: ProcessMain,
    *,
    stop: threading.Event | None = None,
    max_runtime_seconds: float | None = None,
) -> str:
    job, _ = queue.submit(engine, job_in=JobCreate(max_runtime_seconds=max_runtime_seconds))
    lease_deadline = time.monotonic() + settings.lease_seconds
    lease = queue.claim(engine, worker_id="test", lease_seconds=settings.lease_seconds, capabilities=ONE_CPU)
    assert lease is not None and lease.job_id == job.id
    JobSupervisor(
        engine=engine,
        settings=settings,
        lease=lease,
        lease_deadline=lease_deadline,
        stop=stop or threading.Event(),
        mp=multiprocessing.get_context("fork"),
        cpu_threads=SUPERVISED_CPU_THREADS,
        process_main=fake,
    ).run()
    return job.id


def stored(engine: Engine, job_id: str) -> tuple[Job, list[EpochMetric], list[Checkpoint]]:
    with Session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        metrics = list(session.exec(select(EpochMetric).where(EpochMetric.job_id == job_id)).all())
        checkpoints = list(session.exec(select(Checkpoint).where(Checkpoint.job_id == job_id)).all())
        return job, metrics, checkpoints


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


# --- tests ------------------------------------------------------------------------------


def test_each_epoch_is_stored_with_its_checkpoint_and_the_job_succeeds(
    engine: Engine, settings: Settings
) -> None:
    job_id = supervise(engine, settings, trains_two_epochs)
    job, metrics, checkpoints = stored(engine, job_id)
    assert (job.status, job.device, job.precision, job.progress) == (JobStatus.succeeded, "cpu", "fp32", 1.0)
    assert [(m.epoch, m.attempt, m.train_loss) for m in metrics] == [(1, 1, 1.0), (2, 1, 0.5)]
    assert [(c.epoch, c.file_name) for c in checkpoints] == [(1, "attempt-1/epoch-0001.pt")]
    assert (settings.artifacts_dir / job_id / checkpoints[0].file_name).is_file()
    assert DatasetInfo.model_validate(job.dataset_info) == DIGITS
    assert job.cpu_threads == {"intra_op": SUPERVISED_CPU_THREADS, "inter_op": SUPERVISED_CPU_THREADS}
    assert (job.stop_reason, job.best_epoch) == (StopReason.early_stopping, 1)
    assert EvaluationMetrics.model_validate(job.val_metrics) == EVALUATED
    assert job.val_metrics is not None and job.val_metrics["per_class"][0]["class"] == "0"
    assert job.test_metrics is None
    assert job.exports == [
        {
            "name": "model.safetensors",
            "format": "safetensors",
            "file_name": "attempt-1/model.safetensors",
            "size_bytes": len(b"weights of epoch 1"),
            "sha256": hashlib.sha256(b"weights of epoch 1").hexdigest(),
        }
    ]


def test_a_failure_the_process_reports_is_stored_with_its_reason(engine: Engine, settings: Settings) -> None:
    job, metrics, _ = stored(engine, supervise(engine, settings, diverges))
    assert (job.status, job.error_reason, job.error_message) == (
        JobStatus.failed,
        "nan_loss",
        "epoch 2: the loss became non-finite",
    )
    assert job.stop_reason == StopReason.nan_loss
    assert [m.epoch for m in metrics] == [1]


def test_a_process_that_exits_without_a_report_fails_the_job_with_its_exit_code(
    engine: Engine, settings: Settings
) -> None:
    job, _, _ = stored(engine, supervise(engine, settings, exits_without_a_report))
    assert (job.status, job.error_reason) == (JobStatus.failed, "training_error")
    assert job.error_message == "the training process exited with code 3 without reporting a result"


def test_a_process_killed_by_sigkill_is_taken_for_out_of_memory_and_retried(
    engine: Engine, settings: Settings
) -> None:
    job, _, _ = stored(engine, supervise(engine, settings, is_killed))
    assert (job.status, job.error_reason, job.failures) == (JobStatus.queued, "out_of_memory", 1)
    assert job.stop_reason is None  # it will run again


def test_a_process_killed_with_a_message_unread_is_retried_and_the_worker_lives_on(
    engine: Engine, settings: Settings
) -> None:
    renews_soon = settings.model_copy(update={"lease_seconds": 2.0})
    job, _, _ = stored(engine, supervise(engine, renews_soon, is_killed_with_a_renewal_unread))
    assert (job.status, job.error_reason, job.failures) == (JobStatus.queued, "out_of_memory", 1)


def test_stopping_the_worker_hands_the_job_back_with_its_resume_file(
    engine: Engine, settings: Settings
) -> None:
    stop = threading.Event()
    stop.set()  # as if SIGTERM came while the job trained
    job, _, _ = stored(engine, supervise(engine, settings, trains_until_stopped, stop=stop))
    resume = settings.artifacts_dir / job.id / "attempt-1" / "resume.pt"
    assert (job.status, job.failures, job.resume_file) == (JobStatus.queued, 0, "attempt-1/resume.pt")
    assert job.resume_sha256 == hashlib.sha256(resume.read_bytes()).hexdigest()


def test_cancelling_the_job_kills_a_process_that_never_ends(engine: Engine, settings: Settings) -> None:
    def cancel_once_started() -> None:
        job_id = wait_for(lambda: next(iter(_running_job_ids(engine)), None), timeout_s=60)
        wait_for(lambda: (settings.artifacts_dir / job_id / "pid").is_file(), timeout_s=60)
        queue.cancel(engine, job_id=job_id)

    canceller = threading.Thread(target=cancel_once_started)
    canceller.start()
    job_id = supervise(engine, settings, never_ends)
    canceller.join()
    job, _, _ = stored(engine, job_id)
    assert job.status == JobStatus.cancelled
    assert gone(int((settings.artifacts_dir / job_id / "pid").read_text()))


def test_the_time_limit_fails_a_process_that_never_ends(engine: Engine, settings: Settings) -> None:
    job, _, _ = stored(engine, supervise(engine, settings, never_ends, max_runtime_seconds=0.5))
    assert (job.status, job.error_reason) == (JobStatus.failed, "timeout")
    assert gone(int((settings.artifacts_dir / job.id / "pid").read_text()))


def test_each_renewal_of_the_lease_moves_the_process_deadline_on(engine: Engine, settings: Settings) -> None:
    short = settings.model_copy(update={"lease_seconds": 2.0})
    job, _, _ = stored(engine, supervise(engine, short, waits_for_a_renewal))
    assert job.status == JobStatus.succeeded, job.error_message


def _running_job_ids(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(Job.id).where(Job.status == JobStatus.running)).all())
