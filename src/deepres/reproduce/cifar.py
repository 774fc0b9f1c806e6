"""Table 6 (CIFAR-10 test error of ResNet-20 to 110 and their plain counterparts) and Fig. 6
(training and held-out error curves: degradation of plain nets, none for residual ones), from the
shared run store."""

from __future__ import annotations

import statistics
from pathlib import Path

from ..io import write_text_atomic
from .report import DATA_CAVEAT, markdown_table, small_note
from .runs import Budget, copy_logs, ensure_run, full, metrics, small, test_error, train_seconds

# He et al. 2015, Table 6 (CIFAR-10 test error, %, best of 5 runs for 110: "6.43 (6.61+-0.16)")
PAPER = {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97, "resnet110": 6.43}
# akamaster/pytorch_resnet_cifar10: the best public re-run (best epoch picked on the test set)
AKAMASTER = {"resnet20": 8.27, "resnet32": 7.37, "resnet44": 6.90, "resnet56": 6.61, "resnet110": 6.32}

NETS = {
    "small": (["resnet20", "resnet56"], ["plain20", "plain56"]),
    "full": (["resnet20", "resnet32", "resnet44", "resnet56"], ["plain20", "plain56"]),
}


def budget_for(budget: str, data: str | None) -> Budget:
    return small(data) if budget == "small" else full(data)


def train_all(folder: Path, budget: Budget, names: list[str], store: Path) -> dict[str, list[Path]]:
    runs = {n: [ensure_run(store, budget, n, s) for s in budget.seeds] for n in names}
    for rs in runs.values():
        for r in rs:
            copy_logs(r, folder / "runs" / r.name)
    return runs


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}"


def final_train_error(run: Path) -> float:
    return metrics(run)[-1]["train_error"]


def table(runs: dict[str, list[Path]]) -> str:
    from ..analysis.complexity import complexity

    rows = []
    for name, rs in runs.items():
        errors = [test_error(r) for r in rs]
        ours = statistics.mean(errors)
        paper, aka = PAPER.get(name), AKAMASTER.get(name)
        net = complexity(name)
        rows.append([name, net.weight_layers, f"{net.params_m:.2f}", mean_std(errors),
                     paper, "-" if paper is None else f"{ours - paper:+.2f}", aka, len(rs),
                     f"{sum(train_seconds(r) for r in rs) / 60:.1f}"])  # fmt: skip
    header = ["net", "layers", "params (M)", "ours: test error %", "paper", "ours - paper",
              "akamaster (test-selected)", "seeds", "train minutes"]  # fmt: skip
    return markdown_table(header, rows)


def run_cifar(folder: Path, budget: str, data: str | None = None, store: Path = Path("runs")) -> Path:
    b = budget_for(budget, data)
    residual, plain = NETS[budget]
    runs = train_all(folder, b, residual + plain, store)
    report = f"""# CIFAR-10: the paper's Table 6

{b.label}, seeds {list(b.seeds)}; budget `{budget}`.{small_note(budget)} Test error of the
**last** checkpoint, so the validation split (held out of the training set) selects nothing that the
test set then reports (no best-epoch-on-test numbers). The paper trains 64k iterations with lr
0.1 / 0.01 / 0.001; `cifar-fast` trains 30 epochs (10.5k iterations) of one-cycle SGD. {DATA_CAVEAT}

{table(runs)}

Paper: He et al. 2015, Table 6. akamaster: github.com/akamaster/pytorch_resnet_cifar10, which reports
the best epoch on the test set (an optimistic protocol). Logs: [runs/](runs/).
"""
    path = folder / "report.md"
    write_text_atomic(path, report)
    return path


def run_degradation(folder: Path, budget: str, data: str | None = None, store: Path = Path("runs")) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..analysis.curves import plot_runs

    b = budget_for(budget, data)
    residual, plain = NETS[budget]
    runs = train_all(folder, b, plain + residual, store)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120, sharey=True)
    for ax, names, title in ((axes[0], plain, "plain"), (axes[1], residual, "ResNet")):
        plot_runs([str(runs[n][0]) for n in names], folder / "fig6.png", labels=names, title=title, ax=ax)
    fig.tight_layout()
    fig.savefig(folder / "fig6.png")
    plt.close(fig)

    shallow_p, deep_p = plain[0], plain[-1]
    shallow_r, deep_r = residual[0], residual[-1]
    tr = {n: statistics.mean(final_train_error(r) for r in runs[n]) for n in (shallow_p, deep_p)}
    te = {n: statistics.mean(test_error(r) for r in runs[n]) for n in (shallow_r, deep_r)}
    finding1 = tr[deep_p] > tr[shallow_p]
    finding2 = te[deep_r] < te[shallow_r]
    findings = markdown_table(
        ["the paper's finding", "ours", "holds"],
        [
            [f"deeper plain nets train worse: {deep_p} ends with higher training error than {shallow_p}",
             f"{tr[deep_p]:.2f} % vs {tr[shallow_p]:.2f} %", "yes" if finding1 else "NO"],
            [f"deeper residual nets are better: {deep_r} ends with lower test error than {shallow_r}",
             f"{te[deep_r]:.2f} % vs {te[shallow_r]:.2f} %", "yes" if finding2 else "NO"],
        ],
    )  # fmt: skip
    report = f"""# Degradation: the paper's Fig. 6

{b.label}, seeds {list(b.seeds)}; budget `{budget}`.{small_note(budget)} {DATA_CAVEAT}

![Fig. 6](fig6.png)

Thin dashed: training error; bold: validation error (the held-out split of the training set; the test set is
evaluated once, at the end). The paper's Fig. 6 plots test error.

{findings}

Logs: [runs/](runs/).
"""
    path = folder / "report.md"
    write_text_atomic(path, report)
    return path
