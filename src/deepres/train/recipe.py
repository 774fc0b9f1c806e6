"""Recipes are data: a typed, flat dataclass read from TOML, overridable field by field, and stored
(resolved) in every run directory.

Each field describes itself once, here: its help line, its choices or bounds, and its role: whether
it changes what is trained ("what"), only where and how fast ("how"), or how one segment of a run
uses the machine at hand, which a resume may change ("machine"). The command line's flags and help,
validation, the pipeline's settings and the experiments' notion of "the same run" derive from it.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import math
import tomllib
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import tomli_w

from ..choices import (
    ALTERNATING_AUGMENTS,
    AUGMENTS,
    FLIPS,
    NAN_POLICIES,
    NORMALIZATIONS,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TEST_MODES,
)
from ..errors import ConfigError

ROLES = ("what", "how", "machine")


def knob(default, help: str, *, choices: tuple = (), low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False, role: str = "what"):  # fmt: skip
    """A recipe field: its default, one help line, its choices or its range [low, high] (an end
    ``*_open`` excludes its bound) and its role (see the module's docstring)."""
    assert role in ROLES
    meta = {"help": help, "choices": choices, "low": low, "high": high, "low_open": low_open,
            "high_open": high_open, "role": role}  # fmt: skip
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass
class Recipe:
    """Everything a training run depends on. Durations and milestones count iterations when
    ``iterations`` is set, else epochs."""

    name: str = knob("custom", "the recipe's name", role="how")
    description: str = knob("", "what the recipe is, in a sentence", role="how")
    # What to train, on what
    model: str = knob("resnet20", "network name (see `deepres models`)")
    model_options: dict = knob({}, "spec options, e.g. shortcut=B,zero_init_residual=True")
    data: str = knob(
        "cifar10-sample", "cifar10-sample, cifar10, cifar100, fashion-mnist, mnist, or a folder or archive"
    )
    val_split: int = knob(0, "images held out of train for validation (stratified, seeded); 0: the data's own val",
                          low=0)  # fmt: skip
    val_seed: int = knob(0, "the held-out split's seed: the same images whatever the training seed")
    skip_bad_images: bool = knob(False, "skip (and count) unreadable image files instead of stopping")
    memory_budget_gb: float = knob(0.0, "decoded data kept in memory (0: 40 % of the RAM); beyond it, streamed",
                                   low=0, role="how")  # fmt: skip
    init_weights: str = knob("", "start from these weights (a state dict, deepres checkpoint or pretrained NET:TAG)")
    init_skip_mismatch: bool = knob(False, "with init_weights: keep fresh the layers whose shapes do not fit")
    # Preprocessing
    augment: str = knob("cifar", "cifar: pad + crop + flip; imagenet: scale + crop + flip (+ colour); flip; none",
                        choices=AUGMENTS)  # fmt: skip
    pad: int = knob(4, "cifar augmentation: zero padding before the random crop", low=0)
    flip: str = knob("random", "random: each image flipped with probability 1/2 every epoch; alternate: at random "
                     "in even epochs and the other way in odd ones (airbench)", choices=FLIPS)  # fmt: skip
    crop: int = knob(0, "network input side (0: the images' own size)", low=0)
    resize: int = knob(0, "evaluation: shorter side before the centre crop (0: none)", low=0)
    scale_min: int = knob(256, "imagenet augmentation: smallest shorter side", low=1)
    scale_max: int = knob(480, "imagenet augmentation: largest shorter side", low=1)
    jitter: float = knob(0.0, "colour jitter strength (brightness, contrast, saturation)", low=0)
    lighting: float = knob(0.0, "PCA lighting noise std (AlexNet)", low=0)
    normalize: str = knob("pixel-mean", "the paper's per-pixel mean subtraction, or per-channel mean/std",
                          choices=NORMALIZATIONS)  # fmt: skip
    # Optimisation
    batch_size: int = knob(128, "images per step, over all processes", low=1)
    optimizer: str = knob("sgd", "optimiser", choices=OPTIMIZERS)
    lr: float = knob(0.1, "learning rate (the peak of onecycle)", low=0, low_open=True)
    momentum: float = knob(0.9, "SGD momentum", low=0, high=1, high_open=True)
    nesterov: bool = knob(False, "Nesterov momentum")
    weight_decay: float = knob(1e-4, "L2 weight decay", low=0)
    decay_norm_and_bias: bool = knob(True, "also decay BN scales/shifts and biases (the paper decays every parameter)")
    label_smoothing: float = knob(0.0, "label smoothing of the cross-entropy", low=0, high=1, high_open=True)
    # Schedule
    epochs: float = knob(0.0, "training length in epochs (sets iterations to 0)", low=0)
    iterations: int = knob(0, "training length in iterations (sets epochs to 0)", low=0)
    schedule: str = knob("step", "learning-rate schedule", choices=SCHEDULES)
    milestones: list = knob([], "step schedule: multiply the lr by gamma at each, e.g. 32000,48000")
    gamma: float = knob(0.1, "the lr's factor at each milestone (and on a plateau)", low=0, low_open=True)
    warmup: float = knob(0.0, "linear warm-up length (onecycle: the rise to the peak)", low=0)
    warmup_lr: float = knob(0.0, "with warmup_until_error: this lr until the training error drops below it", low=0)
    warmup_until_error: float = knob(0.0, "a fraction, e.g. 0.8: the paper's low-lr start for ResNet-110",
                                     low=0, high=1, high_open=True)  # fmt: skip
    plateau_patience: int = knob(5, "plateau schedule: epochs without a better val error before lr / 10", low=1)
    ema_decay: float = knob(0.0, "exponential moving average of the weights (0: off)", low=0, high=1, high_open=True)
    # Numerics and speed
    precision: str = knob("auto", "auto: bf16 where the hardware has it natively, else fp32", choices=PRECISIONS,
                          role="machine")  # fmt: skip
    channels_last: bool = knob(True, "channels-last memory format (faster convolutions on CPU)", role="how")
    compile: bool = knob(False, "torch.compile the model (pays on long runs only)", role="how")
    threads: int = knob(0, "threads (0: one per usable core, shared among local processes)", low=0, role="machine")
    workers: int = knob(2, "decoding processes, for streamed data only", low=0, role="machine")
    seed: int = knob(0, "seed of every random choice (data order, augmentation, initialisation)")
    sync_bn: bool = knob(False, "distributed runs: BatchNorm statistics over all processes")
    nan_policy: str = knob("stop", "a NaN/inf loss stops the run, or its step is skipped", choices=NAN_POLICIES)
    # Evaluation
    eval_batch_size: int = knob(500, "images per evaluation batch", low=1, role="machine")
    eval_every: int = knob(1, "epochs between validations", low=1)
    test_mode: str = knob("center", "the final test: centre crop, 10 crops or the paper's 5 scales",
                          choices=TEST_MODES)  # fmt: skip
    test_flip: bool = knob(False, "the final test also averages the mirrored images' scores")
    checkpoint_every: float = knob(0.0, "minutes between mid-epoch checkpoints (0: at epoch ends only)", low=0,
                                   role="machine")  # fmt: skip
    model_overrides: dict = knob({}, "per-model changes, e.g. {resnet110 = {warmup_lr = 0.01}}")

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
        """The recipe with ``changes``; a run has one length, so setting epochs clears iterations
        and back (unless both are given)."""
        if "epochs" in changes and "iterations" not in changes:
            changes["iterations"] = 0
        if "iterations" in changes and "epochs" not in changes:
            changes["epochs"] = 0.0
        return dataclasses.replace(self, **{k: coerce(k, v, origin) for k, v in changes.items()})

    def overridden(self, origin: str = "override", **changes) -> Recipe:
        """The recipe with ``changes`` that hold for every model: a field set here (a command-line
        flag) wins over the recipe's per-model override of it, which ``resolved`` would apply on top."""
        overrides = coerce("model_overrides", changes.pop("model_overrides", self.model_overrides), origin)
        # A run has one length: a flag that sets it (epochs or iterations) sets both.
        length = {"epochs", "iterations"} if changes.keys() & {"epochs", "iterations"} else set()
        kept = {p: {k: v for k, v in c.items() if k not in changes.keys() | length} for p, c in overrides.items()}
        return self.replace(origin, **changes, model_overrides={p: c for p, c in kept.items() if c})

    def resolved(self) -> Recipe:
        """The recipe with its ``model_overrides`` for this model applied, and checked. Precision
        "auto" stays as asked: each run segment resolves it for the machine it runs on."""
        recipe = self
        for pattern, changes in self.model_overrides.items():
            if fnmatch.fnmatch(self.model, pattern):
                recipe = recipe.replace(f"model_overrides.{pattern}", **changes)
        recipe.validate()
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
        for name, f in self.fields().items():
            check_value(name, getattr(self, name), f.metadata)
        if not (self.epochs > 0) ^ (self.iterations > 0):
            raise ConfigError("set exactly one of epochs and iterations (the other 0)")
        if self.flip == "alternate" and self.augment not in ALTERNATING_AUGMENTS:
            raise ConfigError(f"flip='alternate' needs augment {' or '.join(ALTERNATING_AUGMENTS)} "
                              f"(got augment={self.augment!r})")  # fmt: skip
        if self.warmup_until_error and not self.warmup_lr:
            raise ConfigError("warmup_until_error needs a warmup_lr")
        if any(not isinstance(m, (int, float)) or m < 0 for m in self.milestones):
            raise ConfigError(f"milestones={self.milestones}: expected non-negative numbers")

    # --- output -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def fields_with_role(*roles: str) -> tuple[str, ...]:
    return tuple(n for n, f in Recipe.fields().items() if f.metadata["role"] in roles)


# Fields a resume may change: how one segment of a run uses the machine it runs on.
MACHINE_FIELDS = fields_with_role("machine")


def describe_range(meta: dict) -> str:
    """'one of a, b', 'a number >= 0', 'a number in [0, 1)', or '' where anything goes."""
    if meta["choices"]:
        return "one of " + ", ".join(meta["choices"])
    low, high = meta["low"], meta["high"]
    if low is not None and high is not None:
        return f"a number in {'(' if meta['low_open'] else '['}{low:g}, {high:g}{')' if meta['high_open'] else ']'}"
    if low is not None:
        return f"a number {'>' if meta['low_open'] else '>='} {low:g}"
    return ""


def check_value(name: str, value: object, meta: dict) -> None:
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{name}={value!r}: expected {describe_range(meta)}")
    low, high = meta["low"], meta["high"]
    below = low is not None and (value <= low if meta["low_open"] else value < low)  # type: ignore[operator]
    above = high is not None and (value >= high if meta["high_open"] else value > high)  # type: ignore[operator]
    if below or above:
        raise ConfigError(f"{name}={value}: expected {describe_range(meta)}")


def _type_of(name: str) -> type:
    return typing.get_type_hints(Recipe)[name]


def coerce(name: str, value: object, origin: str) -> object:
    """Check (and convert where lossless) a value for a field; a wrong type is a ConfigError."""
    if name not in Recipe.fields():
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


def parse_options(pairs: list[str] | None, flag: str = "--option") -> dict:
    """``key=value`` pairs; values are Python literals (numbers, booleans, tuples) or strings."""
    options = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {pair!r}: expected KEY=VALUE")
        try:
            options[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            options[key.strip()] = raw
    return options


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
