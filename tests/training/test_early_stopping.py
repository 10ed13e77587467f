from __future__ import annotations

import json

from worker.training import EarlyStopping
from worker.training.early_stopping import is_better


def test_early_stopping_stops_after_patience_epochs_without_improvement() -> None:
    stopper = EarlyStopping(patience=3, min_delta=0.0, mode="min")

    reasons = [stopper.step(value) for value in [1.0, 0.5, 0.6, 0.5]]
    assert reasons == [None, None, None, None]
    reason = stopper.step(0.7)

    assert reason == "val_loss did not improve by more than 0 for 3 epochs (best 0.5000 at epoch 2)"


def test_an_improvement_resets_the_count_of_stale_epochs() -> None:
    stopper = EarlyStopping(patience=2, mode="min")

    assert [stopper.step(value) for value in [1.0, 1.1, 0.9, 1.0]] == [None, None, None, None]
    assert stopper.step(1.0) is not None


def test_improvements_smaller_than_min_delta_do_not_count() -> None:
    stopper = EarlyStopping(patience=2, min_delta=0.1, mode="min")

    stopper.step(1.0)
    assert stopper.step(0.95) is None
    reason = stopper.step(0.91)

    assert reason is not None
    assert "by more than 0.1 for 2 epochs (best 1.0000 at epoch 1)" in reason


def test_max_mode_treats_higher_values_as_better_for_accuracy() -> None:
    stopper = EarlyStopping(patience=1, mode="max", metric="val_accuracy")

    assert stopper.step(0.5) is None
    assert stopper.step(0.7) is None
    reason = stopper.step(0.6)

    assert reason is not None
    assert reason.startswith("val_accuracy did not improve")
    assert "best 0.7000 at epoch 2" in reason


def test_without_patience_it_never_stops_but_still_tracks_the_best() -> None:
    stopper = EarlyStopping(patience=None, mode="min")

    assert all(stopper.step(float(value)) is None for value in range(50))
    assert (stopper.best, stopper.best_epoch) == (0.0, 1)


def test_state_dict_is_plain_data_and_a_restored_stopper_continues_the_count() -> None:
    original = EarlyStopping(patience=3, mode="min")
    for value in [1.0, 0.8, 0.9, 0.95]:
        original.step(value)

    state = json.loads(json.dumps(original.state_dict()))
    restored = EarlyStopping(patience=3, mode="min")
    restored.load_state_dict(state)

    assert restored.state_dict() == original.state_dict()
    assert restored.step(0.85) == original.step(0.85)
    assert restored.step(0.85) is not None  # would still be None had the count been lost


def test_is_better_respects_mode_and_delta() -> None:
    assert is_better(0.5, None, "min")
    assert is_better(0.4, 0.5, "min")
    assert not is_better(0.5, 0.5, "min")
    assert not is_better(0.45, 0.5, "min", min_delta=0.1)
    assert is_better(0.6, 0.5, "max")
    assert not is_better(0.4, 0.5, "max")


def test_min_epochs_keeps_a_stalled_run_going_until_that_epoch() -> None:
    stopper = EarlyStopping(patience=1, mode="min", min_epochs=4)

    assert [stopper.step(value) for value in [1.0, 2.0, 2.0]] == [None, None, None]
    reason = stopper.step(2.0)

    assert reason == "val_loss did not improve by more than 0 for 3 epochs (best 1.0000 at epoch 1)"
