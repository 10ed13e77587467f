"""The typed training contract: what a job may ask of the trainer.

Pure pydantic, shared by the API (validation at submit time) and the worker
(the training process reads the same model back from the stored JSON).
Every field has a default and a range, so one request cannot demand absurd
resources; unknown keys are rejected.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.contract import ExportFormat
from app.fake_data import fake_data_problem

Dataset = Literal["digits", "fake", "imagefolder", "mnist", "fashion_mnist", "cifar10"]
ModelName = Literal["mlp", "small_cnn", "resnet18", "mobilenet_v3_small", "efficientnet_b0"]
TORCHVISION_MODELS: frozenset[str] = frozenset({"resnet18", "mobilenet_v3_small", "efficientnet_b0"})
DOWNLOADABLE_DATASETS: frozenset[str] = frozenset({"mnist", "fashion_mnist", "cifar10"})

MAX_DATASET_PATH_CHARS = 255
# One request must not be able to ask for absurd memory: fake data is held in memory,
# and an MLP's first layer grows with the image's pixel count.
MAX_MLP_INPUT_FEATURES = 3 * 256 * 256
IMAGEFOLDER_DEFAULT_SIZE = 224
FAKE_DEFAULT_SIZE = 32
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]
Augment = Literal["none", "light", "standard"]
Normalize = Literal["imagenet", "dataset", "none"]
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"


class InitFrom(BaseModel):
    """Another job's checkpoint to take the weights from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: str = Field(pattern=JOB_ID_PATTERN, description="The source job's id.")
    checkpoint: Literal["best", "latest"] | Annotated[int, Field(ge=1, le=1000)] = Field(
        default="best", description='"best", "latest", or an epoch number.'
    )


def _is_numeric(annotation: Any) -> bool:
    if annotation in (int, float):
        return True
    return any(
        _is_numeric(arg) or (isinstance(arg, int) and not isinstance(arg, bool))
        for arg in get_args(annotation)
    )


def numbers_only(model: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """JSON numbers only for numeric fields: "10" and true are not epoch counts (an integral 10.0 is)."""
    field = model.model_fields.get(info.field_name or "")
    if field is not None and _is_numeric(field.annotation) and isinstance(value, bool | str):
        raise ValueError("must be a number, not a string or a boolean")
    return value


class Hyperparameters(BaseModel):
    """Everything the training loop needs; stored on the job fully resolved."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    # data
    dataset: Dataset = "digits"
    dataset_path: str | None = Field(
        default=None,
        max_length=MAX_DATASET_PATH_CHARS,
        description="imagefolder only: a folder relative to TRAINQ_DATA_DIR.",
    )
    download: StrictBool = Field(
        default=False,
        description="mnist, fashion_mnist, cifar10: download into TRAINQ_DATA_DIR if missing.",
    )
    image_size: int | None = Field(
        default=None,
        ge=8,
        le=512,
        description="Square size images are resized to (imagefolder: default 224; fake: default 32).",
    )
    fake_samples: int = Field(default=1024, ge=20, le=100_000)
    fake_channels: Literal[1, 3] = 3
    fake_num_classes: int = Field(default=10, ge=2, le=1000)
    val_fraction: float = Field(
        default=0.2,
        gt=0.0,
        lt=1.0,
        description="Share of the training images held out for validation when the dataset has no val split.",
    )
    augment: Augment | None = Field(
        default=None,
        description="imagefolder training transform: none, light (random resized crop + flip), standard "
        "(light + color jitter + RandAugment). Default: light on imagefolder, none elsewhere.",
    )
    normalize: Normalize | None = Field(
        default=None,
        description="imagefolder: imagenet mean/std, dataset (computed on the train split) or none. "
        "Default: imagenet on imagefolder, none elsewhere.",
    )
    cache: Literal["auto", "memory", "none"] = Field(
        default="auto",
        description="imagefolder: keep decoded images in memory (auto: when they fit the memory budget).",
    )
    skip_bad_images: StrictBool = Field(
        default=False,
        description="imagefolder: leave out unreadable images (counted in dataset_info) instead of failing.",
    )
    num_workers: int = Field(default=2, ge=0, le=32)

    # model
    model: ModelName = "small_cnn"
    pretrained: StrictBool = False
    init_from: InitFrom | None = Field(
        default=None,
        description="Start from another job's weights (never its optimizer or epoch); a different "
        "class count replaces the classifier head.",
    )
    freeze_backbone: StrictBool = Field(default=False, description="Train only the classifier head.")
    unfreeze_at_epoch: int | None = Field(
        default=None, ge=2, le=1000, description="With freeze_backbone: train every layer from this epoch on."
    )

    # optimisation
    epochs: int = Field(default=10, ge=1, le=1000)
    batch_size: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Samples per batch on each device: a job on N devices steps on N x batch_size samples.",
    )
    learning_rate: float = Field(default=1e-3, gt=0.0, le=10.0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: Probability = Field(default=0.9, description="sgd only.")
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    grad_clip_norm: float | None = Field(default=None, gt=0.0, le=1e6)
    label_smoothing: Probability = 0.0

    # learning-rate schedule
    lr_scheduler: Literal["none", "step", "cosine", "plateau", "onecycle"] = "none"
    step_size: int | None = Field(default=None, ge=1, le=1000, description="step: epochs per decay.")
    gamma: float = Field(default=0.1, gt=0.0, lt=1.0, description="step, plateau: decay factor.")
    plateau_patience: int = Field(default=2, ge=0, le=1000)
    min_learning_rate: float = Field(default=0.0, ge=0.0, le=10.0, description="cosine, plateau: floor.")
    onecycle_pct_start: float = Field(default=0.3, gt=0.0, lt=1.0)

    # early stopping and the best checkpoint
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    early_stopping_patience: int | None = Field(default=None, ge=1, le=1000)
    early_stopping_min_delta: float = Field(default=0.0, ge=0.0, le=1e6)
    early_stopping_min_epochs: int = Field(
        default=0, ge=0, le=1000, description="Early stopping never ends a run before this many epochs."
    )

    # execution
    amp: Literal["off", "bf16", "fp16"] = "off"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: StrictBool = Field(
        default=False, description="torch.compile the model: a slower start, faster steps (mostly on GPUs)."
    )
    channels_last: StrictBool | None = Field(
        default=None,
        description="channels_last memory format for convolutional models; default: on CUDA only.",
    )
    deterministic: StrictBool = Field(
        default=False, description="Deterministic kernels only; turns off cudnn.benchmark's autotuning."
    )
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    checkpoint_every: int = Field(default=1, ge=1, le=1000)
    keep_checkpoints_last: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Checkpoints of the last N epochs that stay listed as the job runs.",
    )
    keep_checkpoints_best: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Checkpoints of the best M epochs by `monitor` that stay too (0: only the last N).",
    )
    export: list[ExportFormat] = Field(
        default_factory=lambda: list[ExportFormat](["safetensors"]),
        max_length=3,
        description="Files written from the best epoch at the end: safetensors, torchscript, onnx.",
    )

    _numbers_only = field_validator("*", mode="before")(classmethod(numbers_only))

    @field_validator("dataset_path")
    @classmethod
    def _relative_and_confined(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "\x00" in value or "\\" in value:
            raise ValueError("must not contain NUL bytes or backslashes")
        if re.search(r"%[0-9A-Fa-f]{2}", value):
            raise ValueError("must be a plain path, not percent-encoded")
        path = PurePosixPath(value)
        if path.is_absolute():
            raise ValueError("must be relative to TRAINQ_DATA_DIR, not absolute")
        if ".." in path.parts:
            raise ValueError("must stay inside TRAINQ_DATA_DIR ('..' is not allowed)")
        if not path.parts:
            raise ValueError("must name a folder inside TRAINQ_DATA_DIR")
        return path.as_posix()

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Hyperparameters:
        if self.dataset == "imagefolder" and self.dataset_path is None:
            raise ValueError("dataset 'imagefolder' needs dataset_path (a folder inside TRAINQ_DATA_DIR)")
        if self.dataset != "imagefolder" and self.dataset_path is not None:
            raise ValueError("dataset_path is only used with dataset 'imagefolder'")
        if self.download and self.dataset not in DOWNLOADABLE_DATASETS:
            raise ValueError(f"download applies only to {', '.join(sorted(DOWNLOADABLE_DATASETS))}")
        if self.lr_scheduler == "step" and self.step_size is None:
            raise ValueError("lr_scheduler 'step' needs step_size (epochs between decays)")
        if self.lr_scheduler != "step" and self.step_size is not None:
            raise ValueError("step_size is only used with lr_scheduler 'step'")
        if self.pretrained and self.model not in TORCHVISION_MODELS:
            raise ValueError(
                f"pretrained weights exist only for {', '.join(sorted(TORCHVISION_MODELS))}, not {self.model!r}"
            )
        if self.amp == "fp16" and self.device == "cpu":
            raise ValueError("amp 'fp16' needs a CUDA device; use amp 'bf16' on the CPU")
        if self.min_learning_rate > self.learning_rate:
            raise ValueError("min_learning_rate must not exceed learning_rate")
        if self.dataset != "imagefolder":
            for name in ("augment", "normalize"):
                if getattr(self, name) not in (None, "none"):
                    raise ValueError(f"{name} applies only to dataset 'imagefolder'")
        if self.unfreeze_at_epoch is not None and not self.freeze_backbone:
            raise ValueError("unfreeze_at_epoch needs freeze_backbone: true")
        if self.freeze_backbone and not self.pretrained and self.init_from is None:
            raise ValueError(
                "freeze_backbone needs pretrained weights or init_from: a backbone that starts random cannot be frozen"
            )
        if len(set(self.export)) != len(self.export):
            raise ValueError("export lists a format twice")
        self._check_resources()
        return self

    @model_validator(mode="after")
    def _resolve_transforms(self) -> Hyperparameters:
        # Stored resolved: the job shows the transform it trained with, not a null that means "default".
        on_images = self.dataset == "imagefolder"
        if self.augment is None:
            object.__setattr__(self, "augment", "light" if on_images else "none")
        if self.normalize is None:
            object.__setattr__(self, "normalize", "imagenet" if on_images else "none")
        return self

    def _check_resources(self) -> None:
        if self.dataset == "fake":
            self._check_fake_data_memory()
        if (
            self.model == "mlp"
            and self.image_size is not None
            and 3 * self.image_size**2 > MAX_MLP_INPUT_FEATURES
        ):
            raise ValueError("model 'mlp' takes images up to image_size 256; use a CNN for larger images")
        if self.model == "mlp" and self.dataset == "imagefolder" and self.image_size is None:
            raise ValueError(
                f"model 'mlp' on imagefolder needs image_size (up to 256; the default {IMAGEFOLDER_DEFAULT_SIZE} "
                "makes a very large first layer)"
            )

    def _check_fake_data_memory(self) -> None:
        problem = fake_data_problem(
            samples=self.fake_samples,
            channels=self.fake_channels,
            image_size=self.image_size or FAKE_DEFAULT_SIZE,
            batch_size=self.batch_size,
        )
        if problem is not None:
            raise ValueError(problem)
