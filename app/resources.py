"""What a job asks for (Resources) and what a worker has (Capabilities), and the rule between them.

A job names how many devices it needs and the labels a worker must carry; the device KIND is its
`device` hyperparameter (auto, cpu, cuda). A worker says how many devices of each kind it has and
which labels it carries. Pure data: shared by the API, app.queue (which turns the rule into SQL)
and the worker, and free of sqlmodel and torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.hyperparameters import numbers_only

DeviceKind = Literal["auto", "cpu", "cuda"]  # as the `device` hyperparameter names it
ResolvedKind = Literal["cpu", "cuda"]

LABEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
LABEL_RULE = "1 to 63 characters of a-z, 0-9, '_', '.' and '-', starting with a letter or a digit"
MAX_JOB_DEVICES = 64
MAX_JOB_LABELS = 16
MAX_WORKER_LABELS = 64
# Far above any machine: catches a typo in TRAINQ_WORKER_DEVICES, not a real count.
MAX_WORKER_DEVICES = 4096


def check_label(label: str) -> str:
    if not LABEL_PATTERN.fullmatch(label):
        raise ValueError(f"label {label[:80]!r} is not valid: a label is {LABEL_RULE}")
    return label


class Resources(BaseModel):
    """What a job needs from the worker that runs it (POST /jobs `resources`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    devices: int = Field(
        default=1,
        ge=1,
        le=MAX_JOB_DEVICES,
        description=f"Devices of the job's kind (its `device` hyperparameter), 1 to {MAX_JOB_DEVICES}.",
    )
    labels: list[str] = Field(
        default_factory=list,
        max_length=MAX_JOB_LABELS,
        description=f"Labels the worker must carry (TRAINQ_WORKER_LABELS), at most {MAX_JOB_LABELS}; "
        f"each {LABEL_RULE}. Returned sorted, without repeats.",
    )

    _numbers_only = field_validator("devices", mode="before")(classmethod(numbers_only))

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, labels: list[str]) -> list[str]:
        return sorted({check_label(label) for label in labels})


@dataclass(frozen=True)
class Capabilities:
    """What a worker can serve: its devices of each kind and its labels."""

    cuda_devices: int
    cpu_devices: int
    labels: frozenset[str] = frozenset()

    def resolve(self, kind: DeviceKind) -> ResolvedKind:
        """The kind a job of `kind` runs on here: auto takes CUDA on a worker with a GPU."""
        if kind == "auto":
            return "cuda" if self.cuda_devices > 0 else "cpu"
        return kind

    def devices_of(self, kind: DeviceKind) -> int:
        return self.cuda_devices if self.resolve(kind) == "cuda" else self.cpu_devices

    def can_serve(self, *, devices: int, device_kind: DeviceKind, labels: Iterable[str]) -> bool:
        """The placement rule (app.queue.placement writes the same rule in SQL)."""
        return devices <= self.devices_of(device_kind) and set(labels) <= self.labels

    def describe(self) -> str:
        shown = f"cuda:{self.cuda_devices} cpu:{self.cpu_devices}"
        return f"{shown} labels [{', '.join(sorted(self.labels))}]" if self.labels else shown


@dataclass(frozen=True)
class DeviceCounts:
    """TRAINQ_WORKER_DEVICES: the counts it names; None for a kind that is detected."""

    cuda: int | None = None
    cpu: int | None = None


def parse_device_counts(text: str) -> DeviceCounts:
    """'cuda:4', 'cpu:2', 'cuda:4,cpu:16' (or empty: detect both). Raises ValueError."""
    example = "e.g. cuda:4 or cpu:16 or cuda:4,cpu:16"
    counts: dict[str, int] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        kind, _, number = (part.strip() for part in entry.partition(":"))
        if kind not in ("cuda", "cpu") or not number.isdigit():
            raise ValueError(f"{entry[:40]!r} is not kind:count with kind cuda or cpu ({example})")
        if kind in counts:
            raise ValueError(f"{kind} is given twice ({example})")
        if int(number) > MAX_WORKER_DEVICES:
            raise ValueError(f"{entry!r}: at most {MAX_WORKER_DEVICES} devices of a kind")
        counts[kind] = int(number)
    return DeviceCounts(cuda=counts.get("cuda"), cpu=counts.get("cpu"))


def parse_labels(text: str) -> frozenset[str]:
    """'a100, fast' -> {'a100', 'fast'}. Raises ValueError."""
    labels = frozenset(check_label(part.strip()) for part in text.split(",") if part.strip())
    if len(labels) > MAX_WORKER_LABELS:
        raise ValueError(f"at most {MAX_WORKER_LABELS} labels, got {len(labels)}")
    return labels
