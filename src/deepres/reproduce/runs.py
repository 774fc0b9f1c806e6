"""The run store the training experiments share: one run per (data, recipe, model, seed), under
``runs/<data>-<recipe>/<model>-s<seed>``, trained once, resumed if interrupted, reused by every
experiment that needs it (``cifar`` and ``degradation`` read the same ResNet-56, say)."""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..train.recipe import load_recipe


@dataclass(frozen=True)
class Budget:
    """What a budget trains: the recipe (with overrides), the data, the seeds."""

    name: str
    recipe: str
    data: str
    seeds: tuple[int, ...]
    overrides: tuple[tuple[str, object], ...] = ()

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.overrides)
        return f"recipe `{self.recipe}`" + (f" ({extra})" if extra else "") + f" on `{self.data}`"


def small(data: str | None) -> Budget:
    # Minutes on 2 cores: the embedded 5,000-image sample, one epoch. Shows the machinery, not the paper.
    return Budget("small", "sample", data or "cifar10-sample", (0,), (("epochs", 1), ("warmup", 0.5)))


def full(data: str | None) -> Budget:
    return Budget("full", "cifar-fast", data or "cifar10", (0,))


def run_dir(store: Path, budget: Budget, model: str, seed: int, tag: str = "") -> Path:
    data = Path(budget.data).name.split(".")[0].removesuffix("-jpeg")  # cifar10-jpeg.tar.xz -> cifar10
    group = f"{data}-{budget.recipe}" + ("" if budget.name == "full" else f"-{budget.name}")
    return store / group / (f"{model}-{tag}-s{seed}" if tag else f"{model}-s{seed}")


def ensure_run(
    store: Path, budget: Budget, model: str, seed: int, options: dict | None = None, tag: str = "", train: bool = True
) -> Path | None:
    """The finished run of ``model`` (with spec ``options``, named by ``tag``): reused if done,
    resumed if interrupted, else trained now. ``train=False``: the finished run or None."""
    from ..train.trainer import train as train_run

    out = run_dir(store, budget, model, seed, tag)
    if (out / "test.json").is_file():
        return out
    if not train:
        return None
    if (out / "last.pt").is_file():
        train_run(load_recipe(budget.recipe), resume=out)
        return out
    recipe = load_recipe(budget.recipe).replace(model=model, data=budget.data, seed=seed, **dict(budget.overrides))
    if options:
        recipe = recipe.replace(model_options={**recipe.model_options, **options})
    train_run(recipe, out=out)
    return out


def test_error(run: Path) -> float:
    """Top-1 test error (%) of the last checkpoint: the val split picked nothing the test reports."""
    return json.loads((run / "test.json").read_text())["test"]["top1_error"]


def compute_minutes(run: Path) -> float:
    """The run's training compute: the median epoch's seconds times the epochs. Unlike the wall
    clock, it does not count a pause (SIGSTOP, a session boundary) or an epoch that shared the cores."""
    seconds = [m["seconds"] for m in metrics(run)]
    return statistics.median(seconds) * len(seconds) / 60 if seconds else 0.0


def median_throughput(run: Path) -> float:
    """The median epoch's training images per second: where it is low for its net, the run shared the
    cores with another job for most of its epochs and its minutes overstate the net's cost."""
    rates = [m["images_per_second"] for m in metrics(run) if "images_per_second" in m]
    return statistics.median(rates) if rates else 0.0


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def copy_logs(run: Path, dest: Path) -> None:
    """The small files a report rests on (not the checkpoints) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("recipe.toml", "env.json", "metrics.jsonl", "test.json", "log.txt"):
        if (run / name).is_file():
            shutil.copy2(run / name, dest / name)
