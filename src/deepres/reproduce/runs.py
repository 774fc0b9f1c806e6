"""The run store the training experiments share: one run per (data, recipe, model, seed), under
``runs/<data>-<recipe>/<model>-s<seed>``, trained once, resumed if interrupted, reused by every
experiment that needs it (``cifar`` and ``degradation`` read the same ResNet-56, say).

The store holds checkpoints and is not kept with the reports; each report keeps the logs of the runs
it used in its own ``runs/`` folder. Where the store lacks a run, the logs of the same run (same recipe,
same data) in a report folder stand in for it, so a committed report can be remade, and extended with
new runs, on a machine that never held the earlier runs' checkpoints."""

from __future__ import annotations

import shutil
import statistics
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import DeepresError, RunInUse
from ..train.recipe import Recipe, fields_with_role, load_recipe
from ..train.rundir import RunDir


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

    def resolved_recipe(self) -> Recipe:
        """The recipe with the budget's overrides (before a net or seed is chosen)."""
        return load_recipe(self.recipe).replace(**dict(self.overrides))


def small(data: str | None) -> Budget:
    # Minutes on 2 cores: the embedded 5,000-image sample, one epoch. Shows the machinery, not the paper.
    return Budget("small", "sample", data or "cifar10-sample", (0,), (("epochs", 1), ("warmup", 0.5)))


# The recipe the full budget trains every CIFAR net with: the one `deepres reproduce ablation` found
# (the paper's nets and test protocol, the paper's accuracy for a quarter of its training images).
FULL_RECIPE = "cifar-quarter"


def full(data: str | None) -> Budget:
    return Budget("full", FULL_RECIPE, data or "cifar10", (0,))


def run_dir(store: Path, budget: Budget, model: str, seed: int, tag: str = "") -> Path:
    data = Path(budget.data).name.split(".")[0].removesuffix("-jpeg")  # cifar10-jpeg.tar.xz -> cifar10
    group = f"{data}-{budget.recipe}" + ("" if budget.name == "full" else f"-{budget.name}")
    return store / group / (f"{model}-{tag}-s{seed}" if tag else f"{model}-s{seed}")


def planned_recipe(budget: Budget, model: str, seed: int, options: dict | None = None) -> Recipe:
    """The recipe a store run of ``model`` (with extra spec ``options``) trains with."""
    recipe = load_recipe(budget.recipe).replace(model=model, data=budget.data, seed=seed, **dict(budget.overrides))
    if options:
        recipe = recipe.replace(model_options={**recipe.model_options, **options})
    return recipe


def ensure_run(
    store: Path, budget: Budget, model: str, seed: int, options: dict | None = None, tag: str = "", train: bool = True
) -> Path | None:
    """The finished run of ``model`` (with spec ``options``, named by ``tag``): reused if done,
    resumed if interrupted, else trained now. ``train=False``: the finished run or None."""
    from ..train.trainer import train as train_run

    out = run_dir(store, budget, model, seed, tag)
    if (out / RunDir.RECIPE).is_file():  # a run there already: it must be the one planned, or it is not reused
        planned = planned_recipe(budget, model, seed, options).resolved().to_dict()
        logged = RunDir(out).recipe()
        if differ := recipe_differences(logged, planned):
            said = ", ".join(f"{k} = {logged.get(k)!r}, planned {planned[k]!r}" for k in differ)
            raise DeepresError(f"{out}: trained with another recipe than this experiment plans ({said}); "
                               "move it away to train the planned run")  # fmt: skip
    if RunDir(out).finished:
        return out
    if not train:
        return None
    if (out / RunDir.LAST).is_file():
        train_run(load_recipe(budget.recipe), resume=out)
        return out
    train_run(planned_recipe(budget, model, seed, options), out=out)
    return out


# Recipe fields that say where and how fast a run went, not what it trained: a run logged with other
# values of these is the same experiment. The data is compared by its file's name instead (the
# folder it was read from may differ).
HOW_FIELDS = {"data", *fields_with_role("how", "machine")}
# Both recipes compared are resolved (a run logs its recipe resolved): the per-model overrides that
# apply to the net are in its fields already, and those for other nets change nothing it trained. So
# a recipe that gains an override for ResNet-56 keeps its ResNet-20 runs.
RESOLVED_AWAY = {"model_overrides"}


def logged_run(
    logs: Path, budget: Budget, model: str, seed: int, options: dict | None = None, tag: str = ""
) -> Path | None:
    """The logs of a finished run in a report's ``runs/`` folder (``logs``), if they record the run
    the store would train: same recipe in every field that changes the result, same data."""
    run = logs / run_dir(Path(), budget, model, seed, tag).name
    if not RunDir(run).finished or not (run / RunDir.RECIPE).is_file():
        return None
    try:
        logged = RunDir(run).recipe()
    except tomllib.TOMLDecodeError:
        return None
    planned = planned_recipe(budget, model, seed, options).resolved().to_dict()
    same = not recipe_differences(logged, planned)
    # The same data by its file or dataset name (the folder it was read from may differ).
    return run if same and Path(str(logged.get("data", ""))).name == Path(budget.data).name else None


def recipe_differences(logged: dict, planned: dict) -> list[str]:
    """The fields in which a run's recorded recipe differs from the planned one in what it trains. A
    field newer than the record counts as its default: a field is added with the default that keeps
    what runs did before it."""
    defaults = Recipe().to_dict()
    ignored = HOW_FIELDS | RESOLVED_AWAY
    return [k for k, v in planned.items() if k not in ignored and logged.get(k, defaults.get(k)) != v]


def report_logs(folder: Path) -> list[Path]:
    """Where earlier reports logged their runs: this report's ``runs/`` first, then its siblings'
    (``cifar`` and ``shortcuts`` share the option-A nets, say)."""
    own = folder / "runs"
    return [own] + sorted(p for p in folder.parent.glob("*/runs") if p != own)


def finished_run(
    store: Path, logs: list[Path], budget: Budget, model: str, seed: int, options: dict | None = None,
    tag: str = "", train: bool = True,
) -> Path | None:  # fmt: skip
    """The run's store directory if finished there; else its logs from an earlier report (one of
    ``logs``); else, if ``train``, the store's run trained (or resumed) now; else None. A run that
    another process is training is left to it (None): two processes can work through one
    experiment's runs side by side, say one per core under ``taskset``."""
    done = ensure_run(store, budget, model, seed, options, tag, train=False)
    for folder in logs:
        done = done or logged_run(folder, budget, model, seed, options, tag)
    try:
        return done or ensure_run(store, budget, model, seed, options, tag, train)
    except RunInUse:
        return None


def seed_runs(
    folder: Path, store: Path, budget: Budget, model: str, tag: str = "", train: bool = True
) -> tuple[list[Path], list[int]]:
    """(the finished run of ``model`` for each of the budget's seeds, the seeds with none): see
    ``finished_run``; the logs of each are copied into the report's ``folder/runs``."""
    runs, absent, logs = [], [], report_logs(folder)
    for seed in budget.seeds:
        run = finished_run(store, logs, budget, model, seed, tag=tag, train=train)
        if run is None:
            absent.append(seed)
            continue
        copy_logs(run, folder / "runs" / run.name)
        runs.append(run)
    return runs, absent


def test_error(run: Path) -> float:
    """Top-1 test error (%) of the last checkpoint: the val split picked nothing the test reports."""
    return RunDir(run).test_error()


def compute_minutes(run: Path) -> float:
    """The run's training compute: the median epoch's seconds times the epochs. Unlike the wall
    clock, it does not count a pause (SIGSTOP, a session boundary) or an epoch that shared the cores."""
    seconds = [m["seconds"] for m in metrics(run)]
    return statistics.median(seconds) * len(seconds) / 60 if seconds else 0.0


def minutes_per_run(runs: list[Path]) -> str:
    """The compute of one run of a net (the mean over its seeds), so a net trained with two seeds does
    not look twice as costly as one trained with one."""
    return f"{statistics.mean(compute_minutes(r) for r in runs):.1f}"


def machine(runs: list[Path]) -> str:
    """The CPU kind and precision ("AVX512 bf16", ...) that trained most of the steps of each run, from
    its env.json segments: a run's minutes and img/s are of that machine, and runs resumed elsewhere
    mix them."""
    kinds = []
    for run in runs:
        segments = RunDir(run).env().get("segments", [])
        done = metrics(run)
        ends = [s["step"] for s in segments[1:]] + [done[-1].get("step", 0) if done else 0] if segments else []
        steps: Counter[str] = Counter()
        for segment, end in zip(segments, ends, strict=True):
            kind = " ".join(filter(None, [segment.get("cpu_capability", "?"), segment.get("precision")]))
            steps[kind] += max(end - segment["step"], 0)
        kinds.append(steps.most_common(1)[0][0] if steps else "?")
    return ", ".join(dict.fromkeys(kinds))


def median_throughput(run: Path) -> float:
    """The median epoch's training images per second: where it is low for its net, the run shared the
    cores with another job for most of its epochs and its minutes overstate the net's cost."""
    rates = [m["images_per_second"] for m in metrics(run) if "images_per_second" in m]
    return statistics.median(rates) if rates else 0.0


def val_errors(run: Path) -> list[float]:
    """The run's validation error at each epoch that validated: none for a run on all the training
    images (no validation split)."""
    return [m["val_error"] for m in metrics(run) if "val_error" in m]


def final_val_error(run: Path) -> float:
    """The validation error of the final weights (the last epoch validates)."""
    return metrics(run)[-1]["val_error"]


def images_to_error(run: Path, target: float) -> tuple[float, int] | None:
    """(training images seen, epochs) when the run's validation error first reached ``target`` (%),
    from its logs; None if it never did."""
    batch = RunDir(run).recipe()["batch_size"]
    for m in metrics(run):
        if m.get("val_error", float("inf")) <= target:
            return m["step"] * batch, m["epoch"]
    return None


def metrics(run: Path) -> list[dict]:
    return RunDir(run).metrics()


def copy_logs(run: Path, dest: Path) -> None:
    """The small files a report rests on (not the checkpoints) into ``dest``."""
    if run.resolve() == dest.resolve():
        return  # the report's own logs of an earlier run
    dest.mkdir(parents=True, exist_ok=True)
    for name in RunDir.LOGS:
        if (run / name).is_file():
            shutil.copy2(run / name, dest / name)
