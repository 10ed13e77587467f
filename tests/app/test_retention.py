"""Which checkpoints a job keeps: the last N and best M as it runs (keep_checkpoints_last,
keep_checkpoints_best), and none of a job that ended more than TRAINQ_RETENTION_DAYS ago."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlmodel import col, select

from app import housekeeping, queue
from app.db import read_session, write_session
from app.hyperparameters import Hyperparameters
from app.main import create_app
from app.models import Checkpoint, EpochMetric, Job, JobCreate, utcnow
from app.queue.retention import checkpoints_to_keep
from app.settings import Settings
from app.uploads import content_digest
from tests.factories import epoch_metrics, submit_job
from tests.support.job_files import (
    checkpoint_name,
    claim_next,
    files_of,
    record_epochs,
    succeed_with_export,
)
from tests.support.polling import wait_for

VAL_LOSSES = [0.9, 0.4, 0.6, 0.3, 0.8, 0.5, 0.35, 0.7]


def listed_epochs(engine: Engine, job_id: str) -> list[tuple[int, bool]]:
    with read_session(engine) as session:
        rows = session.exec(
            select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(col(Checkpoint.epoch))
        )
        return [(row.epoch, row.is_best) for row in rows]


def expected_kept(losses: list[float], *, last: int, best: int) -> list[int]:
    """Written independently of app.queue.retention: the last `last` epochs and the `best` lowest losses."""
    epochs = list(range(1, len(losses) + 1))
    lowest = sorted(epochs, key=lambda epoch: (losses[epoch - 1], epoch))[:best]
    return sorted(set(epochs[-last:]) | set(lowest))


@pytest.mark.parametrize(("last", "best"), [(1, 1), (2, 1), (3, 2), (2, 0), (1, 3)])
def test_the_last_n_and_best_m_checkpoints_stay_listed_as_epochs_are_recorded(
    engine: Engine, settings: Settings, last: int, best: int
) -> None:
    submit_job(engine, keep_checkpoints_last=last, keep_checkpoints_best=best)
    lease = claim_next(engine)
    for count in range(1, len(VAL_LOSSES) + 1):
        record_epochs(engine, settings.artifacts_dir, lease, VAL_LOSSES[count - 1 : count], first=count)
        kept = expected_kept(VAL_LOSSES[:count], last=last, best=best)
        listed = listed_epochs(engine, lease.job_id)
        assert [epoch for epoch, _ in listed] == kept, f"after epoch {count}"
        assert files_of(settings.artifacts_dir, lease.job_id) == [
            f"attempt-1/{checkpoint_name(epoch)}" for epoch in kept
        ]
        best_so_far = min(range(1, count + 1), key=lambda epoch: VAL_LOSSES[epoch - 1])
        assert [epoch for epoch, is_best in listed if is_best] == (
            [best_so_far] if best_so_far in kept else []
        )


def test_the_best_are_ranked_by_the_monitored_metric(engine: Engine, settings: Settings) -> None:
    job = submit_job(engine, monitor="val_accuracy", keep_checkpoints_last=1, keep_checkpoints_best=2)
    lease = claim_next(engine)
    for epoch, accuracy in enumerate([0.5, 0.9, 0.7, 0.8, 0.6], start=1):
        record_epochs(engine, settings.artifacts_dir, lease, [1.0], first=epoch)
        with write_session(engine) as session:
            session.execute(
                update(EpochMetric)
                .where(col(EpochMetric.job_id) == job.id, col(EpochMetric.epoch) == epoch)
                .values(val_accuracy=accuracy)
            )
    # Epoch 1 is marked best by the (fake) loop's val_loss ranking; by val_accuracy 2 and 4 lead.
    assert [epoch for epoch, _ in listed_epochs(engine, job.id)] == [1, 2, 5]


def test_ties_keep_the_earlier_epoch_as_is_best_does() -> None:
    monitored: dict[int, float | None] = {1: 0.5, 2: 0.5, 3: 0.7, 4: None}
    kept = checkpoints_to_keep(monitored, best_epoch=1, keep_last=1, keep_best=2, monitor="val_loss")
    assert kept == {1, 2, 4}
    assert checkpoints_to_keep(
        {1: 0.5, 2: 0.9, 3: 0.9}, best_epoch=2, keep_last=1, keep_best=2, monitor="val_accuracy"
    ) == {2, 3}


def test_retention_hyperparameters_are_validated_and_left_out_of_the_request_hash_at_their_defaults() -> None:
    with pytest.raises(ValueError, match="keep_checkpoints_last"):
        Hyperparameters(keep_checkpoints_last=0)
    with pytest.raises(ValueError, match="keep_checkpoints_best"):
        Hyperparameters(keep_checkpoints_best=-1)
    Hyperparameters(keep_checkpoints_best=0)
    plain = JobCreate()
    stored_before = JobCreate.model_validate(
        {
            "hyperparameters": {
                k: v for k, v in plain.hyperparameters.model_dump().items() if not k.startswith("keep_")
            }
        }
    )
    assert queue.request_hash(stored_before) == queue.request_hash(plain)
    assert "keep_checkpoints" not in plain.model_dump_json(
        exclude={"hyperparameters": set(queue.submission.LATER_HYPERPARAMETERS)}
    )
    changed = JobCreate(hyperparameters=Hyperparameters(keep_checkpoints_last=2))
    assert queue.request_hash(changed) != queue.request_hash(plain)


def ended_days_ago(engine: Engine, job_id: str, days: float) -> None:
    with write_session(engine) as session:
        session.execute(
            update(Job).where(col(Job.id) == job_id).values(finished_at=utcnow() - timedelta(days=days))
        )


def test_retention_days_removes_old_ended_jobs_checkpoints_but_keeps_metrics_and_exports(
    engine: Engine, settings: Settings
) -> None:
    submit_job(engine, keep_checkpoints_last=2)
    old = claim_next(engine)
    record_epochs(engine, settings.artifacts_dir, old, [0.5, 0.6, 0.7])
    succeed_with_export(engine, settings.artifacts_dir, old)
    ended_days_ago(engine, old.job_id, 8)
    submit_job(engine)
    recent = claim_next(engine)
    record_epochs(engine, settings.artifacts_dir, recent, [0.5, 0.6])
    succeed_with_export(engine, settings.artifacts_dir, recent)
    ended_days_ago(engine, recent.job_id, 6)
    submit_job(engine)
    running = claim_next(engine)
    record_epochs(engine, settings.artifacts_dir, running, [0.5])
    # A job handed back mid-epoch and then cancelled keeps its resume file until retention.
    submit_job(engine)
    handed_back = claim_next(engine)
    resume = settings.artifacts_dir / handed_back.job_id / "attempt-1" / "resume.pt"
    resume.parent.mkdir(parents=True)
    resume.write_bytes(b"r" * 100)
    assert queue.release(engine, lease=handed_back, resume_file="attempt-1/resume.pt", runtime_seconds=1.0)
    assert queue.cancel(engine, job_id=handed_back.job_id) is not None
    ended_days_ago(engine, handed_back.job_id, 30)

    report = housekeeping.expire_checkpoints(engine, artifacts_dir=settings.artifacts_dir, retention_days=7)

    assert (report.jobs, report.files) == (2, 4)
    assert report.bytes == 1001 + 1002 + 1003 + 100
    assert listed_epochs(engine, old.job_id) == []
    assert files_of(settings.artifacts_dir, old.job_id) == [
        "attempt-1/model.safetensors",
        "logs/attempt-1.log",
    ]
    assert not resume.exists()
    with read_session(engine) as session:
        old_job = session.get(Job, old.job_id)
        assert old_job is not None and old_job.exports
        metrics = session.exec(select(EpochMetric.epoch).where(EpochMetric.job_id == old.job_id)).all()
        assert sorted(metrics) == [1, 2, 3]
        assert session.get(Job, handed_back.job_id).resume_file is None  # type: ignore[union-attr]
    assert [epoch for epoch, _ in listed_epochs(engine, recent.job_id)] == [1, 2]
    assert [epoch for epoch, _ in listed_epochs(engine, running.job_id)] == [1]
    again = housekeeping.expire_checkpoints(engine, artifacts_dir=settings.artifacts_dir, retention_days=7)
    assert again.jobs == 0


def test_the_api_applies_retention_days_at_start_up(
    engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    submit_job(engine)
    lease = claim_next(engine)
    record_epochs(engine, settings.artifacts_dir, lease, [0.5])
    succeed_with_export(engine, settings.artifacts_dir, lease)
    ended_days_ago(engine, lease.job_id, 2)
    caplog.set_level("INFO", logger="app")

    with TestClient(create_app(settings.model_copy(update={"retention_days": 1.5}))) as client:
        wait_for(lambda: listed_epochs(engine, lease.job_id) == [], timeout_s=30, what="retention")
        assert client.get(f"/jobs/{lease.job_id}").json()["checkpoints"] == []

    assert files_of(settings.artifacts_dir, lease.job_id) == [
        "attempt-1/model.safetensors",
        "logs/attempt-1.log",
    ]
    assert f"job {lease.job_id}: ended over 1.5 days ago: removed 1 checkpoint files" in caplog.text


def test_retention_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="retention_days"):
        Settings(retention_days=0)


def test_the_api_removes_its_copies_of_what_retention_unlisted_for_a_worker_on_another_host(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    submit_job(engine, keep_checkpoints_last=2, keep_checkpoints_best=0)
    lease = claim_next(engine)
    for epoch in range(1, 5):
        body = f"epoch {epoch}".encode() * 100
        name = checkpoint_name(epoch)
        digest = {"Content-Digest": content_digest(hashlib.sha256(body).hexdigest())}
        url = f"/jobs/{lease.job_id}/attempts/1/files/{name}"
        assert client.put(url, content=body, headers=digest).status_code == 201
        checkpoint = queue.CheckpointFile(
            epoch=epoch,
            file_name=f"attempt-1/{name}",
            size_bytes=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            is_best=epoch == 1,
        )
        metrics = epoch_metrics(epoch)
        unneeded = queue.record_epoch(
            engine, lease=lease, metrics=metrics, progress=0.5, checkpoint=checkpoint
        )
        assert unneeded == ([f"attempt-1/{checkpoint_name(epoch - 2)}"] if epoch > 2 else [])
    # The worker deletes its own copies; the API learns at the attempt's next upload, here its log.
    log = b"done\n"
    digest = {"Content-Digest": content_digest(hashlib.sha256(log).hexdigest())}
    assert client.put(f"/jobs/{lease.job_id}/attempts/1/log", content=log, headers=digest).status_code == 204
    assert files_of(settings.artifacts_dir, lease.job_id) == [
        "attempt-1/epoch-0003.pt",
        "attempt-1/epoch-0004.pt",
        "logs/attempt-1.log",
    ]
