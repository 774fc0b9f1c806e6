"""Recipes are data: a typed, flat dataclass read from TOML, overridable field by field, and stored
(resolved) in every run directory."""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import tomli_w

from ..errors import ConfigError
from ..hardware import PRECISIONS

CHOICES = {
    "optimizer": ("sgd", "adamw"),
    "schedule": ("step", "cosine", "onecycle", "plateau", "constant"),
    "precision": PRECISIONS,
    "augment": ("cifar", "imagenet", "flip", "none"),
    "normalize": ("pixel-mean", "channel", "none"),
    "test_mode": ("center", "ten-crop", "multi-scale"),
    "nan_policy": ("stop", "skip"),
}

# Fields that say how one segment of a run uses the machine at hand, not what it trains: a resume
# (possibly on another machine) may change them.
MACHINE_FIELDS = ("precision", "threads", "checkpoint_every", "eval_batch_size", "workers")


@dataclass
class Recipe:
    """Everything a training run depends on. Durations and milestones count iterations when
    ``iterations`` is set, else epochs."""

    name: str = "custom"
    description: str = ""
    # What to train, on what
    model: str = "resnet20"
    model_options: dict = field(default_factory=dict)  # spec options, e.g. {shortcut = "B"}
    data: str = "cifar10-sample"  # a dataset name, folder or archive
    val_split: int = 0  # images held out of train for validation (stratified, seeded); 0: the data's own 'val'
    val_seed: int = 0  # the split's seed: the same held-out images whatever the training seed
    skip_bad_images: bool = False  # skip (and count) unreadable files instead of stopping
    memory_budget_gb: float = 0.0  # decoded data kept in memory (0: 40 % of the RAM); beyond it, stream
    init_weights: str = ""  # start from these weights (a state dict or deepres checkpoint): fine-tuning
    init_skip_mismatch: bool = False  # keep fresh the layers whose shapes do not fit (a new classifier)
    # Preprocessing
    augment: str = "cifar"
    pad: int = 4
    crop: int = 0
    resize: int = 0
    scale_min: int = 256
    scale_max: int = 480
    jitter: float = 0.0
    lighting: float = 0.0
    normalize: str = "pixel-mean"
    # Optimisation
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    decay_norm_and_bias: bool = True  # the paper decays every parameter
    label_smoothing: float = 0.0
    # Schedule
    epochs: float = 0.0
    iterations: int = 0
    schedule: str = "step"
    milestones: list = field(default_factory=list)  # step: multiply the lr by gamma at each
    gamma: float = 0.1
    warmup: float = 0.0  # linear warm-up length (onecycle: the rise to the peak)
    warmup_lr: float = 0.0  # with warmup_until_error: this lr until the training error drops below it
    warmup_until_error: float = 0.0  # as a fraction, e.g. 0.8 (the paper's ResNet-110)
    plateau_patience: int = 5  # plateau: epochs without a better val error before lr / 10
    ema_decay: float = 0.0  # exponential moving average of the weights (0: off)
    # Numerics and speed
    precision: str = "auto"  # auto: bf16 where the hardware has it natively, else fp32
    channels_last: bool = True
    compile: bool = False
    threads: int = 0  # 0: one per core (shared among local processes)
    workers: int = 2  # decoding processes, for streamed data only
    seed: int = 0
    sync_bn: bool = False  # distributed runs: batch statistics over all processes
    nan_policy: str = "stop"  # a NaN/inf loss stops the run, or the step is skipped
    # Evaluation
    eval_batch_size: int = 500
    eval_every: int = 1  # epochs between validations
    test_mode: str = "center"
    test_flip: bool = False  # also average the scores of the mirrored test images
    checkpoint_every: float = 0.0  # minutes between mid-epoch checkpoints (0: at epoch ends only)
    # Per-model adjustments, e.g. the paper's ResNet-110 warm-up: {resnet110 = {warmup_lr = 0.01}}
    model_overrides: dict = field(default_factory=dict)

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, values: dict, origin: str = "recipe") -> Recipe:
        known = cls.fields()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{origin}: unknown recipe field(s) {', '.join(unknown)}")
        return cls(**{k: coerce(k, v, origin) for k, v in values.items()})

    def replace(self, origin: str = "override", **changes) -> Recipe:
        return dataclasses.replace(self, **{k: coerce(k, v, origin) for k, v in changes.items()})

    def resolved(self) -> Recipe:
        """The recipe with its ``model_overrides`` for this model applied, and checked."""
        recipe = self
        for pattern, changes in self.model_overrides.items():
            if fnmatch.fnmatch(self.model, pattern):
                recipe = recipe.replace(f"model_overrides.{pattern}", **changes)
        recipe.validate()
        # precision "auto" stays as asked: each run segment resolves it for the machine it runs on
        # (a resume on a CPU without native bf16 must not crawl at emulated speed), and the trainer
        # logs what each epoch used.
        return recipe

    def fit_warmup(self) -> tuple[Recipe, str]:
        """(the recipe, a note): a warm-up as long as the run (``--epochs 2`` on a recipe that warms up
        for 3) would leave an lr that only rises; it becomes a fifth of the run, and the note says so."""
        length, unit = (self.iterations, "iterations") if self.iterations else (self.epochs, "epochs")
        if not 0 < length <= self.warmup:
            return self, ""
        warmup = length / 5 if unit == "epochs" else max(1, length // 5)
        note = (
            f"warmup={self.warmup:g} {unit} is not shorter than the run ({length:g} {unit}), so the lr would only "
            f"rise: warm-up shortened to {warmup:g} {unit} (a fifth of the run; set --warmup to choose)"
        )
        return dataclasses.replace(self, warmup=warmup), note

    def validate(self) -> None:
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected one of {', '.join(choices)}")
        positive = ["batch_size", "eval_batch_size", "eval_every"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a positive number")
        for name in [
            "lr",
            "weight_decay",
            "momentum",
            "epochs",
            "iterations",
            "warmup",
            "label_smoothing",
            "jitter",
            "lighting",
            "val_split",
            "pad",
            "crop",
            "resize",
            "workers",
            "threads",
            "ema_decay",
            "warmup_lr",
            "checkpoint_every",
            "memory_budget_gb",
        ]:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a value >= 0")
        if self.lr <= 0 or self.gamma <= 0:
            raise ConfigError(f"lr={self.lr}, gamma={self.gamma}: expected values > 0")
        if not (self.epochs > 0) ^ (self.iterations > 0):
            raise ConfigError("set exactly one of epochs and iterations (the other 0)")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.ema_decay < 1 or not 0 <= self.momentum < 1:
            raise ConfigError("label_smoothing, ema_decay and momentum must be in [0, 1)")
        if not 0 <= self.warmup_until_error < 1:
            raise ConfigError(f"warmup_until_error={self.warmup_until_error}: expected a fraction in [0, 1)")
        if self.warmup_until_error and not self.warmup_lr:
            raise ConfigError("warmup_until_error needs a warmup_lr")
        if any(not isinstance(m, (int, float)) or m < 0 for m in self.milestones):
            raise ConfigError(f"milestones={self.milestones}: expected non-negative numbers")

    # --- output -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def _type_of(name: str) -> type:
    hints = typing.get_type_hints(Recipe)
    return hints[name]


def coerce(name: str, value: object, origin: str) -> object:
    """Check (and convert where lossless) a value for a field; a wrong type is a ConfigError."""
    fields = Recipe.fields()
    if name not in fields:
        raise ConfigError(f"{origin}: unknown recipe field {name!r}")
    kind = _type_of(name)
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        list: lambda v: isinstance(v, (list, tuple)),
        dict: lambda v: isinstance(v, dict),
    }[kind]
    if not ok(value):
        raise ConfigError(f"{origin}: {name}={value!r} is not a {kind.__name__}")
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise ConfigError(f"{origin}: {name}={value!r}: expected a finite number")
        return float(value)  # type: ignore[arg-type]
    if kind is list:
        if any(isinstance(v, float) and not math.isfinite(v) for v in value):  # type: ignore[union-attr]
            raise ConfigError(f"{origin}: {name}={value!r}: expected finite numbers")
        return list(value)  # type: ignore[arg-type]
    return value


def parse_field(name: str, raw: str) -> object:
    """A command-line string for a field: 'true'/'false', numbers, 'a,b' lists, 'k=v,k=v' dicts."""
    kind = _type_of(name)
    flag = f"--{name.replace('_', '-')}"
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError
            return low in ("true", "1", "yes", "on")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is list:
            return [
                float(x) if "." in x or "e" in x.lower() else int(x) for x in raw.strip("[]").split(",") if x.strip()
            ]
        if kind is dict:
            from ..cli import parse_options

            return parse_options([p for p in raw.split(",") if p], flag)
    except ValueError:
        raise ConfigError(f"{flag} {raw!r}: expected a {kind.__name__}") from None
    return raw


# --- named recipes ------------------------------------------------------------------------------------
def _recipe_files() -> dict[str, object]:
    folder = resources.files("deepres") / "recipes"
    return {p.name.removesuffix(".toml"): p for p in folder.iterdir() if p.name.endswith(".toml")}


def list_recipes() -> list[tuple[str, str]]:
    return [(name, load_recipe(name).description) for name in sorted(_recipe_files())]


def load_recipe(name_or_path: str) -> Recipe:
    files = _recipe_files()
    if name_or_path in files:
        text, origin = files[name_or_path].read_text(), f"recipe {name_or_path}"  # type: ignore[attr-defined]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(
                f"unknown recipe {name_or_path!r}; expected one of {', '.join(sorted(files))} or a .toml file"
            )
        try:
            text, origin = path.read_text(), str(path)
        except UnicodeDecodeError:
            raise ConfigError(f"--recipe {path}: not a text file; expected a recipe in TOML") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{origin}: not valid TOML ({e})") from None
    values.setdefault("name", Path(name_or_path).stem)
    return Recipe.from_dict(values, origin)
