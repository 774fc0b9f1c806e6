"""The paper's Table 1 (ResNet-18 to 152: parameters and multiply-adds), the CIFAR nets' parameter
column (Table 6) and Fig. 3's comparison of VGG-19, plain-34 and ResNet-34, all counted from the real
modules (``deepres.analysis.complexity``). No training: both budgets are the same and take seconds."""

from __future__ import annotations

from pathlib import Path

from ..analysis.complexity import Complexity, complexity
from .experiment import Experiment, Report, Request
from .report import difference, markdown_table

IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
CIFAR = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202"]
FIG3 = ["vgg19", "plain34", "resnet34"]


def table1(nets: list[Complexity]) -> str:
    rows = []
    for c in nets:
        p = c.paper
        rows.append([c.name, c.weight_layers, round(c.params_m, 2), p.params_m, difference(c.params_m, p.params_m),
                     round(c.macs_g, 2), p.macs_g, difference(c.macs_g, p.macs_g)])  # fmt: skip
    header = ["net", "layers", "params (M)", "paper", "difference", "mult-adds (G)", "paper", "difference"]
    return markdown_table(header, rows)


def cifar_column(nets: list[Complexity]) -> str:
    rows = [[c.name, c.weight_layers, round(c.params_m, 3), c.paper.params_m, "yes" if c.params_match() else "NO",
             round(c.macs_g * 1000, 1)] for c in nets]  # fmt: skip
    header = ["net", "layers", "params (M)", "paper", "equal at the paper's precision", "mult-adds (M)"]
    return markdown_table(header, rows)


def fig3(nets: list[Complexity], png: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"vgg19": "VGG-19", "plain34": "34-layer plain", "resnet34": "34-layer residual"}
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.bar([names[c.name] for c in nets], [c.macs_g for c in nets], color=["0.6", "tab:blue", "tab:red"])
    ax.bar([names[c.name] for c in nets], [c.paper.macs_g for c in nets], fill=False, edgecolor="k", linestyle="--")
    ax.set_ylabel("multiply-adds per 224x224 image (G)")
    ax.set_title("Fig. 3: ours (bars) and the paper (dashed)")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    rows = [[names[c.name], round(c.params_m, 1), round(c.macs_g, 2), c.paper.macs_g,
             difference(c.macs_g, c.paper.macs_g)] for c in nets]  # fmt: skip
    return markdown_table(["net", "params (M)", "mult-adds (G)", "paper", "difference"], rows)


def make(q: Request) -> Report:
    folder, budget = q.folder, q.budget
    imagenet = [complexity(n) for n in IMAGENET]
    cifar = [complexity(n) for n in CIFAR]
    fig = [complexity(n) for n in FIG3]
    body = f"""Counted by `deepres reproduce complexity` from the real modules (a forward pass with hooks on every
convolution and fully-connected layer), not from a table of constants. Multiply-adds per image at
the native input (224 for ImageNet nets, 32 for CIFAR nets); layers counted as the paper does
(projection shortcuts excluded). Budget: {budget} (no training; the same at every budget).

## Table 1: ImageNet nets (paper's placement: a bottleneck's stride on its first 1x1; option B)

{table1(imagenet)}

The paper rounds parameters to 3 significant digits and quotes multiply-adds ("FLOPs") to 2; ours
are within {max(abs(c.params_deviation()) for c in imagenet):.1f} % and \
{max(abs(c.macs_deviation()) for c in imagenet):.1f} % of them.

## Table 6: CIFAR-10 nets (6n+2 layers, option A shortcuts)

{cifar_column(cifar)}

## Fig. 3: VGG-19, 34-layer plain and 34-layer residual

{fig3(fig, folder / "fig3_complexity.png")}

![Fig. 3 complexity](fig3_complexity.png)

The 34-layer residual net costs the plain net's multiply-adds plus only its projection shortcuts
(option B, {100 * (fig[2].macs / fig[1].macs - 1):.1f} % more): {100 * fig[2].macs / fig[0].macs:.0f} % of VGG-19's.
"""
    return Report("Complexity: the paper's Table 1, Table 6's parameter column and Fig. 3", body, logs=False)


EXPERIMENT = Experiment("complexity", False, make, "Table 1, Table 6's parameters and Fig. 3, counted from the modules")
