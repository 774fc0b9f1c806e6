"""The paper's own CIFAR-10 protocol, exactly (recipe ``cifar-paper``: 64k iterations of batch 128,
lr 0.1 / 0.01 / 0.001 with drops at 32k and 48k, on a 45k/5k split), on the pixel-exact CIFAR-10:
Table 6's numbers beside ours, mean +- std over seeds, and Fig. 6-style curves of these runs."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..analysis.complexity import complexity
from ..train.rundir import RunDir
from .cifar import AKAMASTER, FIG6_TOP, PAPER, TOLERANCE, final_train_error, mean_std, two_places
from .experiment import Experiment, Report, Request
from .report import compare, data_note, markdown_table, small_note
from .runs import Budget, compute_minutes, median_throughput, metrics, seed_runs, test_error

RECIPE = "cifar-paper"


@dataclass(frozen=True)
class Planned:
    """Runs of one net at one setting: seeds, and recipe changes beyond the budget's (named by ``tag``)."""

    net: str
    seeds: tuple[int, ...]
    tag: str = ""
    changes: tuple[tuple[str, object], ...] = ()
    what: str = ""

    @property
    def label(self) -> str:
        return self.net + (f" ({self.what})" if self.what else "")


TRAINVAL = dict(tag="trainval", changes=(("val_split", 0),), what="trained on all 50k")
PLANS = {
    "small": [Planned("resnet20", (0, 1)), Planned("plain20", (0,)), Planned("resnet20", (0,), **TRAINVAL)],
    "full": [
        Planned("resnet20", (0, 1, 2)),
        Planned("plain20", (0,)),
        Planned("resnet56", (0,)),
        Planned("plain56", (0,)),
        Planned("resnet20", (0,), **TRAINVAL),
    ],
}


def budget(name: str, data: str | None) -> Budget:
    if name == "small":
        # The embedded sample, the paper's schedule shape in 40 iterations of 16: checks the machinery.
        changes = (("iterations", 40), ("milestones", [20, 30]), ("val_split", 500), ("batch_size", 16))
        return Budget("small", RECIPE, data or "cifar10-sample", (0,), changes)
    return Budget("full", RECIPE, data or "cifar10", (0,))


def precisions(run: Path) -> str:
    """The precision(s) a run trained in, in order, from its segments (a resume may change it)."""
    segments = RunDir(run).env().get("segments", [])
    used = [s["precision"] for s in segments] or [m.get("precision", "?") for m in metrics(run)]
    return " then ".join(dict.fromkeys(used))


def images_seen(run: Path) -> float:
    """Training images, in millions: the last step times the batch size."""
    batch = RunDir(run).recipe()["batch_size"]
    return metrics(run)[-1]["step"] * batch / 1e6


def table(done: list[tuple[Planned, list[Path]]]) -> str:
    rows = []
    for plan, runs in done:
        errors = [test_error(r) for r in runs]
        paper = PAPER.get(plan.net)
        mean = statistics.mean(errors)
        rows.append([plan.label, complexity(plan.net).weight_layers, ", ".join(str(s) for s in plan.seeds[: len(runs)]),
                     ", ".join(f"{e:.2f}" for e in errors), mean_std(errors), two_places(paper),
                     "-" if paper is None else f"{mean - paper:+.2f}", two_places(AKAMASTER.get(plan.net)),
                     f"{statistics.mean(final_train_error(r) for r in runs):.2f}",
                     f"{statistics.mean(images_seen(r) for r in runs):.2f}",
                     f"{sum(compute_minutes(r) for r in runs):.0f}",
                     f"{statistics.median(median_throughput(r) for r in runs):.0f}",
                     "; ".join(dict.fromkeys(precisions(r) for r in runs))])  # fmt: skip
    header = ["net", "layers", "seeds", "test error % per seed", "ours: mean +- std", "paper", "ours - paper",
              "akamaster (test-selected)", "final training error %", "training images (M)",
              "train minutes (median epoch x epochs, all seeds)", "median img/s", "precision"]  # fmt: skip
    return markdown_table(header, rows)


def findings(done: list[tuple[Planned, list[Path]]]) -> str:
    main = {p.net: rs for p, rs in done if not p.tag}
    test_err = {n: statistics.mean(test_error(r) for r in rs) for n, rs in main.items()}
    train_err = {n: statistics.mean(final_train_error(r) for r in rs) for n, rs in main.items()}
    claim = f"ResNet-20 within {TOLERANCE} points of the paper's {PAPER['resnet20']} %"
    rows = [[claim, "not yet run", "-"]]
    if "resnet20" in main:
        errors = [test_error(r) for r in main["resnet20"]]
        gap = statistics.mean(errors) - PAPER["resnet20"]
        seeds = f"{len(errors)} seed{'s' if len(errors) > 1 else ''}"
        rows = [[claim, f"{mean_std(errors)} % ({seeds}): {gap:+.2f}", "yes" if abs(gap) <= TOLERANCE else "NO"]]
    rows.append(compare("deeper plain nets train worse: plain56 ends with higher training error than plain20",
                        train_err, "plain56", "plain20", lower=False))  # fmt: skip
    rows.append(compare("deeper residual nets are better: resnet56 ends with lower test error than resnet20",
                        test_err, "resnet56", "resnet20", lower=True))  # fmt: skip
    return markdown_table(["the paper's claim", "ours", "holds"], rows)


def figure(folder: Path, done: list[tuple[Planned, list[Path]]], milestones: list[int]) -> None:
    """Fig. 6's two panels (plain, residual) for these runs, the lr drops marked."""
    from ..analysis.curves import Panel, depth_colors, plot_panels

    shown = [(p, rs[0]) for p, rs in done if not p.tag]  # each net's first seed
    color = depth_colors([p.net for p, _ in shown])
    panels = []
    for title, residual in (("plain", False), ("ResNet", True)):
        panel = [(p, r) for p, r in shown if p.net.startswith("resnet") == residual]
        panels.append(Panel(title, [str(r) for _, r in panel], [p.net for p, _ in panel],
                            [color[p.net] for p, _ in panel]))  # fmt: skip
    plot_panels(panels, folder / "fig6.png", shared_y=True, marks=tuple(m / 1e4 for m in milestones), y_top=FIG6_TOP)


def make(q: Request) -> Report:
    folder, budget_name = q.folder, q.budget
    b = budget(budget_name, q.data)
    done, missing = [], []
    for plan in PLANS[budget_name]:
        planned = dataclasses.replace(b, seeds=plan.seeds, overrides=b.overrides + plan.changes)
        runs, absent = seed_runs(folder, q.store, planned, plan.net, plan.tag, q.train)
        missing += [f"{plan.label} seed {seed}" for seed in absent]
        if runs:
            done.append((plan, runs))
    recipe = b.resolved_recipe()
    figure(folder, done, sorted(recipe.milestones))
    body = f"""{b.label}; budget `{budget_name}`.{small_note(budget_name)} {data_note(b.data)}
The recipe is the paper's Sec. 4.2 protocol: batch {recipe.batch_size}, SGD momentum {recipe.momentum}, weight decay
{recipe.weight_decay} on every parameter, lr {recipe.lr} divided by {1 / recipe.gamma:g} at
{" and ".join(f"{m:,}" for m in recipe.milestones)} iterations, stop at {recipe.iterations:,}; 4-pixel zero
pad, random 32x32 crop and flip; per-pixel mean subtracted; He initialisation; option-A shortcuts.
The paper chose its 64k stop "on a 45k/5k train/val split" and does not say whether the nets it
reports then trained on all 50k; ours train on the training set less {recipe.val_split:,} held-out images
(which give the validation curves) unless marked "trained on all 50k". Test error of the
**final** weights, single centre crop: nothing is selected on the test set.

{findings(done)}

{table(done)}

![Fig. 6 at the paper's schedule](fig6.png)

Thin dashed: training error (running, on augmented batches); bold: validation error on the held-out
images; dotted: the lr drops. Each net's first seed. The paper's Fig. 6 plots test error. The y axis ends
at {FIG6_TOP:.0f} %, as the paper's does: the first iterations run off it.

Paper: He et al. 2015, Table 6 (ResNet-110's 6.43 is its best of 5 runs; mean 6.61 +- 0.16).
akamaster: github.com/akamaster/pytorch_resnet_cifar10 (best epoch picked on the test set, an
optimistic protocol). Compute is of the machines the runs used (see each run's `env.json`
segments); a run that shared its cores shows a low img/s.
"""
    return Report("The paper's CIFAR-10 schedule, exactly", body, missing)


EXPERIMENT = Experiment("paper-schedule", True, make, "Table 6 and Fig. 6 at the paper's exact CIFAR-10 schedule")
