"""Shortcut options A/B/C (the paper's Sec. 3.3 and Table 3): A pads the added channels with zeros
(no parameters), B projects (1x1 conv + BN) only where the shape changes, C projects everywhere.

The paper compares them on ImageNet with ResNet-34 and uses A throughout its CIFAR section. We
compare them on CIFAR-10 with the CIFAR nets, and with an ImageNet-style ResNet-18 layout on CIFAR-10
upscaled to a quarter of the paper's ImageNet scale (recipe ``imagenet-quarter``)."""

from __future__ import annotations

from pathlib import Path

from ..analysis.complexity import complexity
from .cifar import FIG6_TOP, TOLERANCE, budget_for
from .experiment import Experiment, Report, Request
from .report import data_note, markdown_table, small_note
from .runs import Budget, compute_minutes, copy_logs, finished_run, report_logs, test_error

OPTIONS = ("A", "B", "C")
# He et al. 2015, Table 3: ImageNet val top-1 error (%, 10-crop) of ResNet-34 with each option.
PAPER_TABLE3 = {"A": 25.03, "B": 24.52, "C": 24.19}

CIFAR_NETS = {"small": ["resnet20"], "full": ["resnet32", "resnet56"]}
# The ResNet-18 layout (7x7/2 stem, max-pool, [2, 2, 2, 2] basic blocks, four stages) at half width:
# a quarter of the compute, so three runs fit a few hours of 2 cores.
FOLDER_NET = "resnet18"
FOLDER_OPTIONS = {"widths": [32, 64, 128, 256], "stem_width": 32}


def folder_budget(budget: str, data: str | None) -> Budget:
    if budget == "small":
        # The embedded sample, one epoch: checks the machinery.
        overrides = (("epochs", 1), ("warmup", 0.5), ("val_split", 500), ("model_options", FOLDER_OPTIONS))
        return Budget("small", "imagenet-quarter", data or "cifar10-sample", (0,), overrides)
    return Budget("full", "imagenet-quarter", data or "cifar10", (0,), (("model_options", FOLDER_OPTIONS),))


def tag(model: str, option: str) -> str:
    # Option A is the CIFAR nets' default: its run is the one `cifar` and `degradation` use.
    return "" if option == "A" and model != FOLDER_NET else option


# Each net's finished runs by option, with their test errors, for the figure.
Curves = dict[str, dict[str, tuple[Path, float]]]


def rows_for(
    nets: list[str], budget: Budget, store: Path, folder: Path, train: bool, folder_net: bool = False
) -> tuple[list[list], list[str], Curves]:
    """(one row per finished (net, option): its size and test error, beside the paper's Table 3 for
    the ImageNet-style net; the runs not finished; each net's runs by option)."""
    rows, missing, logs, curves = [], [], report_logs(folder), {}
    size = {"input_size": 56, "num_classes": 10, **FOLDER_OPTIONS} if folder_net else {}
    for name in nets:
        errors = {}
        for option in OPTIONS:
            # The untagged option-A run is the CIFAR net as `cifar` trains it: no options (A is its default).
            options = {"shortcut": option} if tag(name, option) else None
            run = finished_run(store, logs, budget, name, budget.seeds[0], options, tag(name, option), train)
            if run is None:
                missing.append(f"{name} {option}")
                continue
            copy_logs(run, folder / "runs" / run.name)
            errors[option] = test_error(run)
            curves.setdefault(name, {})[option] = (run, errors[option])
            net = complexity(name, shortcut=option, **size)
            vs_a = f"{errors[option] - errors['A']:+.2f}" if "A" in errors else "-"
            paper = PAPER_TABLE3[option] if folder_net else "-"
            rows.append([name, option, f"{net.params_m:.3f}", f"{net.macs / 1e6:.1f}", f"{errors[option]:.2f}",
                         vs_a, paper, f"{compute_minutes(run):.1f}"])  # fmt: skip
    return rows, missing, curves


def figure(path: Path, curves: Curves) -> bool:
    """One panel per net: the training and validation curves of its options, each labelled with its
    test error, so a reader sees whether the options differ beyond the wiggle of a curve. False
    when no run has finished (no figure)."""
    if not curves:
        return False
    from ..analysis.curves import Panel, plot_panels

    # Fig. 6's 20 % fits the CIFAR nets; the ImageNet-style net ends near 20 %, so its panel gets
    # twice its worst test error, the same margin above where its options differ.
    panels = [Panel(name, [str(run) for run, _ in runs.values()],
                    [f"{option}: test {error:.2f} %" for option, (_, error) in runs.items()],
                    y_top=max(FIG6_TOP, 2 * max(error for _, error in runs.values())))
              for name, runs in curves.items()]  # fmt: skip
    plot_panels(panels, path, width=4.6, height=4.0)
    return True


def ordering(rows: list[list]) -> str:
    """Per net with at least two options finished, the options from lowest to highest test error
    (the paper's Table 3: C < B < A)."""
    by_net: dict[str, list[tuple[float, str]]] = {}
    for row in rows:
        by_net.setdefault(row[0], []).append((float(row[4]), row[1]))
    compared = {n: v for n, v in by_net.items() if len(v) > 1}
    if not compared:
        return "Options from lowest to highest test error: none yet (no net has two options finished)."
    return (
        "Options from lowest to highest test error: "
        + "; ".join(f"{n}: " + " < ".join(o for _, o in sorted(v)) for n, v in compared.items())
        + "."
    )


def beyond_noise(rows: list[list]) -> str:
    """The options that differ from A by more than Table 6's tolerance (about three of the paper's
    seed standard deviations), so that a reader sees which differences a single seed can carry."""
    far = [f"{row[0]} {row[1]} {row[5]}" for row in rows if row[5] != "-" and abs(float(row[5])) > TOLERANCE]
    rule = f"more than {TOLERANCE} points (about three of those standard deviations)"
    if not far:
        return f"No option differs from A by {rule}."
    return f"Differing from A by {rule}: {', '.join(far)}."


FIGURE = "shortcuts.png"
FIGURE_TEXT = f"""
![Training curves per shortcut option]({FIGURE})

One panel per net, one colour per option: thin dashed, training error (running, on augmented
batches); bold, validation error on the held-out images; each option's test error in the legend. The
y axis ends at {FIG6_TOP:.0f} % (as Fig. 6's), or at twice a panel's worst test error where that is higher,
so that it shows where the options differ; the first epochs run off it.
"""

HEADER = ["net", "shortcut", "params (M)", "mult-adds (M)", "ours: test error %", "vs A",
          "paper Table 3 (ImageNet ResNet-34, top-1 10-crop)", "train minutes (median epoch x epochs)"]  # fmt: skip


def make(q: Request) -> Report:
    cifar = budget_for(q.budget, q.data)
    images = folder_budget(q.budget, q.data)
    cifar_rows, cifar_missing, cifar_curves = rows_for(CIFAR_NETS[q.budget], cifar, q.store, q.folder, q.train)
    folder_rows, folder_missing, folder_curves = rows_for(
        [FOLDER_NET], images, q.store, q.folder, q.train, folder_net=True
    )
    drawn = figure(q.folder / FIGURE, cifar_curves | folder_curves)
    r = images.resolved_recipe()
    widths = FOLDER_OPTIONS["widths"]
    body = f"""Budget `{q.budget}`, seed {list(cifar.seeds)}.{small_note(q.budget)}
A: identity shortcuts, zero-padded where the channels grow (no parameters); B: projections (1x1 conv +
BN) only where the shape changes; C: projections on every shortcut. Test error of the final weights
(their moving average where the recipe keeps one; the validation split selects nothing).

## CIFAR-10 nets

{cifar.label}. {data_note(cifar.data)} The paper uses option A for all its CIFAR nets and reports no A/B/C
comparison on CIFAR.

{markdown_table(HEADER[:6] + HEADER[7:], [r[:6] + r[7:] for r in cifar_rows])}

## An ImageNet-style net at reduced scale

The ResNet-18 layout (7x7/2 stem, max-pool, four stages of two basic blocks) at reduced width
(stem {FOLDER_OPTIONS["stem_width"]}, stages {"/".join(str(w) for w in widths)}), trained on {images.label}
with the paper's ImageNet augmentation at reduced scale (the 32x32 images upscaled: shorter side
{r.scale_min}-{r.scale_max}, {r.crop} crop; evaluation {r.resize} / centre {r.crop}). {data_note(images.data)}
The paper's figures are ResNet-34 on ImageNet: compare the ordering and the size of the differences,
not the errors.

{markdown_table(HEADER, folder_rows)}

{ordering(cifar_rows + folder_rows)} The paper's
Table 3: C < B < A, with differences small enough (0.5 and 0.3 points) that "projection shortcuts are
not essential for addressing the degradation problem". One seed per option here: the paper's own
ResNet-110 runs spread by a standard deviation of 0.16 points (Table 6, 5 runs), so single-seed
differences of a few tenths on CIFAR are within seed-to-seed noise. {beyond_noise(cifar_rows + folder_rows)}
{FIGURE_TEXT if drawn else ""}"""
    return Report("Shortcuts: options A, B and C (the paper's Table 3)", body, cifar_missing + folder_missing)


EXPERIMENT = Experiment("shortcuts", True, make, "Table 3's options A/B/C on CIFAR nets and a ResNet-18 layout")
