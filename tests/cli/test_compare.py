"""`trainq compare`: one column per job, the rows that differ highlighted and listed first."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from trainq.compare import DIFFERS_STYLE, comparison_rows, comparison_table


def job(job_id: str, **hyperparameters: Any) -> dict[str, Any]:
    return {
        "id": job_id * 32,
        "name": "baseline",
        "status": "succeeded",
        "best_val_accuracy": 0.9,
        "best_epoch": 3,
        "stop_reason": "completed",
        "duration_seconds": 12.0,
        "hyperparameters": {"epochs": 3, "model": "small_cnn", "learning_rate": 0.001, **hyperparameters},
    }


def rendered(jobs: list[dict[str, Any]], *, show_all: bool = False) -> list[str]:
    console = Console(width=120, record=True, force_terminal=True, color_system="standard")
    console.print(comparison_table(jobs, comparison_rows(jobs, show_all=show_all)))
    return console.export_text(styles=True).splitlines()


def test_the_summary_comes_first_then_the_differing_hyperparameters_highlighted() -> None:
    jobs = [job("a"), job("b", learning_rate=0.01, optimizer="sgd"), job("c", learning_rate=0.01)]
    jobs[2]["best_val_accuracy"] = 0.95
    rows = comparison_rows(jobs)
    assert [row.label for row in rows] == [
        "name",
        "status",
        "best_val_accuracy",
        "best_epoch",
        "stop_reason",
        "duration",
        "learning_rate",
        "optimizer",
    ]
    assert [row.label for row in rows if row.differs] == ["best_val_accuracy", "learning_rate", "optimizer"]
    assert rows[-1].values == (None, "sgd", None)


def test_the_identical_hyperparameters_follow_the_differing_ones_with_all() -> None:
    labels = [row.label for row in comparison_rows([job("a"), job("b", epochs=5)], show_all=True)]
    assert labels[6:] == ["epochs", "learning_rate", "model"]


def test_differing_rows_are_styled_and_marked() -> None:
    lines = rendered([job("a"), job("b", learning_rate=0.01)])
    styled = next(line for line in lines if "learning_rate" in line)
    same = next(line for line in lines if "stop_reason" in line)
    assert DIFFERS_STYLE == "bold yellow"
    assert "\x1b[1;33m" in styled and "\x1b[1;33m" not in same
    assert styled.lstrip().startswith("*")
    text = "\n".join(lines)
    assert "aaaaaaaa" in text and "bbbbbbbb" in text
    assert "0.001" in styled and "0.01" in styled
    assert "90.00%" in text and "12.0s" in text
