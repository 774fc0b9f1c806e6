"""The paper's Fig. 7: the standard deviation of each 3x3 layer's response (after BN, before the
ReLU or the addition) on the CIFAR-10 test set, in layer order and sorted by magnitude, for plain and
residual nets. The paper's reading: residual functions are generally closer to zero than the plain
nets' layers, and the deeper the ResNet, the smaller its responses."""

from __future__ import annotations

import functools
import json
import statistics
from collections.abc import Callable
from pathlib import Path

from ..analysis.curves import depth_colors
from ..analysis.responses import layer_responses
from ..data import FileSet, ImageSet, load_dataset
from ..io import write_text_atomic
from ..pretrained import list_pretrained, load_pretrained
from ..train.checkpoint import load_checkpoint, model_from_checkpoint
from ..train.rundir import RunDir
from .cifar import budget_for, train_all
from .experiment import Experiment, Report, Request
from .report import compare, data_note, markdown_table, small_note
from .runs import copy_logs

NETS = {
    "small": ["plain20", "plain56", "resnet20", "resnet56"],
    "full": ["plain20", "plain56", "resnet20", "resnet56", "resnet110"],
}


def checkpoint_responses(ckpt: dict, name: str, test: ImageSet | FileSet) -> dict[str, float]:
    """{3x3 layer: std of its response on ``test``} for the weights of a checkpoint (fp32)."""
    model, pipeline, _ = model_from_checkpoint(ckpt, name)
    return dict(layer_responses(model, test, pipeline))


def run_responses(run: Path, test: Callable[[], ImageSet | FileSet]) -> dict[str, float] | None:
    """{3x3 layer: std of its response on the test set} for a run's last checkpoint (fp32), measured
    now and logged in the run's responses.json; for a run known only by its logs (its checkpoint not at
    hand), the logged measurement; None if neither."""
    log = run / RunDir.RESPONSES
    if (run / RunDir.LAST).is_file():
        stds = checkpoint_responses(load_checkpoint(run / RunDir.LAST), str(run), test())
        record = {"checkpoint": RunDir.LAST, "split": "test", "std": stds}
        write_text_atomic(log, json.dumps(record, indent=1) + "\n")
        return stds
    if log.is_file():
        return json.loads(log.read_text())["std"]
    return None


def measure(runs: dict[str, list[Path]], data: str) -> tuple[dict[str, list[float]], list[str]]:
    """(per net, the std of each 3x3 layer's response in layer order; the nets with no measurement)."""
    test = functools.cache(lambda: load_dataset(data).require("test"))  # loaded only if a checkpoint needs it
    stds, unmeasured = {}, []
    for name, rs in runs.items():
        layers = run_responses(rs[0], test)
        if layers is None:
            unmeasured.append(name)
        else:
            stds[name] = list(layers.values())
    return stds, unmeasured


def measure_pretrained(nets: list[str], tag: str, data: str) -> tuple[dict[str, list[float]], dict, list[str]]:
    """(per net, the std of each 3x3 layer's response; per net, its pretrained cfg; the nets not
    shipped as NET:TAG)."""
    shipped = set(list_pretrained())
    test = functools.cache(lambda: load_dataset(data).require("test"))
    stds, cfgs, absent = {}, {}, []
    for net in nets:
        name = f"{net}:{tag}"
        if name not in shipped:
            absent.append(name)
            continue
        ckpt = load_pretrained(name)
        stds[net], cfgs[net] = list(checkpoint_responses(ckpt, name, test()).values()), ckpt["pretrained_cfg"]
    return stds, cfgs, absent


def plot(stds: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 1, figsize=(8, 7), dpi=120)
    color = depth_colors(list(stds))  # as in Fig. 6: plain-56 and ResNet-56 share a colour
    for name, values in stds.items():
        plain = name.startswith("plain")
        style = {"linestyle": "--" if plain else "-", "linewidth": 1.2, "label": name, "color": color[name]}
        axes[0].plot(range(1, len(values) + 1), values, **style)
        axes[1].plot(range(1, len(values) + 1), sorted(values, reverse=True), **style)
    axes[0].set_xlabel("layer index (original)")
    axes[1].set_xlabel("layer index (sorted by magnitude)")
    for ax in axes:
        ax.set_ylabel("std")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are counted, not measured
        if stds:
            ax.legend(fontsize=8)
    fig.suptitle("Std of 3x3 layer responses on the CIFAR-10 test set (cf. the paper's Fig. 7)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def findings(mean: dict[str, float], absent: str = "not yet run") -> str:
    """The paper's two readings of Fig. 7, checked on the mean std over each net's layers."""
    rows = [compare(f"resnet{d} responds more weakly than plain{d}", mean, f"resnet{d}", f"plain{d}", lower=True,
                    unit="", digits=3, absent=absent) for d in (20, 56)]  # fmt: skip
    residual = [n for n in ("resnet20", "resnet56", "resnet110") if n in mean]
    rows += [compare(f"the deeper {b} responds more weakly than {a}", mean, b, a, lower=True, unit="", digits=3)
             for a, b in zip(residual, residual[1:], strict=False)]  # fmt: skip
    return markdown_table(["the paper's reading of Fig. 7", "ours: mean std over layers", "holds"], rows)


def unmeasured_note(nets: list[str]) -> str:
    if not nets:
        return ""
    return (f"\n**Not measured**: {', '.join(nets)}: finished, but neither the checkpoint nor a logged "
            "responses.json is at hand.\n")  # fmt: skip


def make(q: Request) -> Report:
    folder = q.folder
    b = budget_for(q.budget, q.data)
    if q.pretrained:
        stds, cfgs, absent = measure_pretrained(NETS[q.budget], q.pretrained, b.data)
        rows = [[f"{n}:{q.pretrained}", c["recipe"], c["seed"], f"{c['images_trained'] / 1e6:.2f}",
                 f"{c['test_error']:.2f}", f"`{c['source_run']}`"] for n, c in cfgs.items()]  # fmt: skip
        what = f"""The pretrained nets `NET:{q.pretrained}` (`deepres.list_pretrained()`), measured on the test set
of the data below; nothing trained.

{markdown_table(["net", "recipe", "seed", "images trained (M)", "test error %", "source run"], rows)}

For each net,"""
        missing, unmeasured, logs = [], [], False
    else:
        # One seed a net: the figure shows one curve each.
        runs, missing = train_all(folder, b, NETS[q.budget], q.store, q.train, more_seeds=False)
        stds, unmeasured = measure(runs, b.data)
        for rs in runs.values():
            copy_logs(rs[0], folder / "runs" / rs[0].name)  # now with its responses.json
        what = f"{b.label}, seed {list(b.seeds)}; budget `{q.budget}`.{small_note(q.budget)}\n"
        what += "For each net's final weights (their moving average where the recipe keeps one),"
        absent, logs = [], True
    plot(stds, folder / "fig7.png")
    write_text_atomic(folder / "responses.json", json.dumps(stds, indent=1) + "\n")
    mean = {n: statistics.mean(v) for n, v in stds.items()}
    table = markdown_table(
        ["net", "3x3 layers", "mean std", "median std", "max std"],
        [[n, len(v), f"{mean[n]:.3f}", f"{statistics.median(v):.3f}", f"{max(v):.3f}"] for n, v in stds.items()],
    )
    not_shipped = f"\n**Not shipped**: {', '.join(absent)}.\n" if absent else ""
    body = f"""{what} the standard deviation of every 3x3 layer's output after its BN and
before the ReLU or the residual addition (the stem convolution included), over all elements (images,
channels, positions) of the test set, in eval mode (fp32). {data_note(b.data)}

![Fig. 7](fig7.png)

Top: in layer order; bottom: sorted by magnitude. Dashed: plain nets. Per-layer values:
[responses.json](responses.json).

{table}

{findings(mean, "not shipped" if q.pretrained else "not yet run")}
{unmeasured_note(unmeasured)}{not_shipped}"""
    return Report("Layer responses: the paper's Fig. 7", body, missing, logs)


EXPERIMENT = Experiment(
    "responses", True, make, "Fig. 7: the std of each 3x3 layer's response, plain vs residual", measures_pretrained=True
)
