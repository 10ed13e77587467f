"""Shared helpers for the training tests: a recording callback and a tiny-run factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from app.hyperparameters import Hyperparameters
from worker.training import (
    CheckpointInfo,
    EpochMetrics,
    NullCallbacks,
    RunInfo,
    TrainingOutcome,
    run_training,
)


@dataclass
class Recorder(NullCallbacks):
    """Keeps every event, in order, so tests can check what a run reported."""

    events: list[str] = field(default_factory=list)
    infos: list[RunInfo] = field(default_factory=list)
    progress: list[tuple[int, float]] = field(default_factory=list)
    metrics: list[EpochMetrics] = field(default_factory=list)
    checkpoints: list[CheckpointInfo] = field(default_factory=list)

    def on_start(self, info: RunInfo) -> None:
        self.events.append("start")
        self.infos.append(info)

    def on_progress(self, epoch: int, fraction: float) -> None:
        self.progress.append((epoch, fraction))

    def on_epoch_end(self, metrics: EpochMetrics, checkpoint: CheckpointInfo | None) -> None:
        if checkpoint is None:
            self.events.append(f"epoch {metrics.epoch}")
        else:  # the file is complete by the time its epoch is reported
            written = checkpoint.path.is_file() and checkpoint.path.stat().st_size == checkpoint.size_bytes
            self.events.append(f"epoch {metrics.epoch} with {'' if written else 'missing '}checkpoint")
        self.metrics.append(metrics)
        if checkpoint is not None:
            self.checkpoints.append(checkpoint)

    @property
    def learning_rates(self) -> list[float]:
        return [m.learning_rate for m in self.metrics]


@dataclass
class Run:
    outcome: TrainingOutcome
    recorder: Recorder
    checkpoint_dir: Path

    def checkpoint_files(self) -> list[str]:
        return sorted(p.name for p in self.checkpoint_dir.glob("*")) if self.checkpoint_dir.exists() else []


Train = Callable[..., Run]


def _stop_after(recorder: Recorder, batches: int) -> Callable[[], bool]:
    """Like the worker's stop event set during batch `batches`: once True, True however often asked."""
    return lambda: len(recorder.progress) >= batches


# Small and fast: the mlp on digits trains an epoch in a few milliseconds.
TINY: dict[str, Any] = {"dataset": "digits", "model": "mlp", "epochs": 2, "batch_size": 128}


@pytest.fixture(scope="module", autouse=True)
def _one_cpu_thread() -> Iterator[None]:
    # These models are tiny: extra intra-op threads only add synchronisation, and
    # when other jobs share the CPU their spin-waits make a run many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def train(tmp_path: Path) -> Train:
    """Run training in tmp_path; keyword arguments override the tiny defaults.

    `stop_after_batches=n` asks the run to stop once it has trained n batches (counted
    from its own start, so a resumed run counts afresh). `init_file`: the checkpoint file that
    the hyperparameter init_from names, as the worker hands it over.
    """
    counter = iter(range(1_000))

    def _train(
        *,
        checkpoint_dir: Path | None = None,
        resume_from: Path | None = None,
        init_file: Path | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        stop_after_batches: int | None = None,
        **overrides: Any,
    ) -> Run:
        hp = Hyperparameters(**{**TINY, **overrides})
        checkpoint_dir = checkpoint_dir or tmp_path / f"run-{next(counter)}"
        recorder = Recorder()
        if stop_after_batches is not None:
            should_stop = _stop_after(recorder, stop_after_batches)
        outcome = run_training(
            hp,
            data_dir=tmp_path / "data",
            checkpoint_dir=checkpoint_dir,
            callbacks=recorder,
            resume_from=resume_from,
            init_from=init_file,
            should_stop=should_stop,
        )
        return Run(outcome, recorder, checkpoint_dir)

    return _train
