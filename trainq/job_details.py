"""How `trainq show` presents one job: a row per fact, the optional ones only when the job has them."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from trainq.render import Job, epochs_of, human_bytes, status_text


def job_details(job: Job) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    error = job.get("error")
    rows: list[tuple[str, str | Text]] = [
        ("id", job["id"]),
        ("name", Text(job["name"] or "-")),
        ("owner", Text(job["owner"])),
        ("status", status_text(job["status"])),
        *_optional_row("tags", ", ".join(job.get("tags") or []) or None),
        *_optional_row("notes", job.get("notes") or None),
        *_optional_row("sweep", job.get("sweep")),
        *_optional_row("queue", queue_text(job)),
        *_optional_row("waiting", waiting_reason(job)),
        ("error", Text(f"{error['reason']}: {error['message']}") if error else "-"),
        ("progress", f"{job['progress']:.0%} (epoch {epochs_of(job)})"),
        ("attempts", f"{job['attempts']} of {job['max_attempts']}"),
        *_optional_row("priority", None if job.get("priority") is None else str(job["priority"])),
        ("runtime", f"{job['runtime_seconds']:.1f}s" + _limit(job.get("max_runtime_seconds"))),
        *_optional_row("duration", _seconds(job.get("duration_seconds"))),
        *_optional_row("best", best_text(job)),
        ("device", f"{job.get('device') or '-'} ({job.get('precision') or '-'})"),
        *_optional_row("resources", resources_text(job)),
        *_optional_row("stopped", stop_text(job)),
        *_optional_row("dataset", dataset_text(job)),
        *_optional_row("from", warm_start_text(job)),
        *_optional_row("test", _evaluation_text(job.get("test_metrics"))),
        *_optional_row(
            "disk", None if job.get("disk_bytes") is None else human_bytes(int(job["disk_bytes"]))
        ),
        ("created", job["created_at"]),
        ("started", job.get("started_at") or "-"),
        ("finished", job.get("finished_at") or "-"),
        ("hyperparameters", Text(" ".join(f"{k}={v}" for k, v in sorted(job["hyperparameters"].items())))),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


def best_text(job: Job) -> str | None:
    """ "97.3% val accuracy (epoch 4)": the best epoch so far, once there is one."""
    best = job.get("best_val_accuracy")
    if best is None:
        return None
    epoch = job.get("best_epoch")
    return f"{best:.1%} val accuracy" + ("" if epoch is None else f" (epoch {epoch})")


def resources_text(job: Job) -> str | None:
    """What the job needs from a worker, when it is more than the default (one device, no labels)."""
    resources = job.get("resources") or {}
    devices = int(resources.get("devices", 1))
    labels = list(resources.get("labels", []))
    if devices == 1 and not labels:
        return None
    kind = job["hyperparameters"].get("device", "auto")
    needed = f"{devices} device{'s' if devices != 1 else ''} ({kind})"
    return f"{needed}, labels [{', '.join(labels)}]" if labels else needed


def stop_text(job: Job) -> str | None:
    """Why training ended ("early_stopping (best epoch 4)"), once it has."""
    reason = job.get("stop_reason")
    if not reason:
        return None
    best = job.get("best_epoch")
    return f"{reason} (best epoch {best})" if reason == "early_stopping" and best else str(reason)


def dataset_text(job: Job) -> str | None:
    """ "3 classes, 60 train / 15 val / 12 test (split_folders)": what the job trains on."""
    info = job.get("dataset_info")
    if not info:
        return None
    text = (
        f"{len(info['classes'])} classes, {info['train_samples']} train / {info['val_samples']} val"
        f" / {info['test_samples']} test ({info['layout']})"
    )
    skipped = int(info.get("skipped_count", 0))
    return f"{text}, {skipped} unreadable images skipped" if skipped else text


def warm_start_text(job: Job) -> str | None:
    """Where init_from's weights came from, and which tensors started fresh."""
    warm = job.get("warm_start")
    if not warm:
        return None
    fresh = f", new: {', '.join(warm['new'])}" if warm["new"] else ""
    return f"job {warm['job']} epoch {warm['epoch']} ({warm['loaded']} tensors loaded{fresh})"


def _evaluation_text(metrics: Job | None) -> str | None:
    if not metrics:
        return None
    return f"accuracy {metrics['accuracy']:.2%}, loss {metrics['loss']:.4f} (epoch {metrics['epoch']})"


def waiting_reason(job: Job) -> str | None:
    """Why a queued job cannot start (the server says it only when no live worker could run it)."""
    reason = job.get("waiting_reason")
    return str(reason) if job["status"] == "queued" and reason else None


def queue_text(job: Job) -> str | None:
    """A queued job's place: "3rd (2 running ahead)", from the server's queue_position (1 = next)
    and running_ahead (jobs running on the workers that could take it)."""
    position = job.get("queue_position")
    if job["status"] != "queued" or position is None:
        return None
    running = job.get("running_ahead")
    return ordinal(int(position)) + ("" if running is None else f" ({running} running ahead)")


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _optional_row(label: str, value: str | None) -> list[tuple[str, str | Text]]:
    # Text, not str: rich would take "[a100]" in a label or a reason for markup.
    return [] if value is None else [(label, Text(value))]


def _seconds(seconds: float | None) -> str | None:
    """Wall-clock time as 42.0s, 3m 05s or 2h 03m."""
    if seconds is None:
        return None
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def _limit(max_runtime_seconds: float | None) -> str:
    return f" of {max_runtime_seconds:.0f}s allowed" if max_runtime_seconds else ""
