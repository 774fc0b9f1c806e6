"""Training curves in the style of the paper's Fig. 6: thin dashed lines for training error, bold
lines for validation (or test) error, one colour per run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DeepresError
from ..train.rundir import RunDir


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    return RunDir(run_dir).metrics()


def run_label(run_dir: str | os.PathLike) -> str:
    run = RunDir(run_dir)
    return run.recipe().get("model", run.path.name) if (run / RunDir.RECIPE).is_file() else run.path.name


def depth_colors(names: list[str]) -> dict[str, str]:
    """One matplotlib cycle colour per depth, so plain-56 and ResNet-56 match across a figure's
    panels and between figures."""
    import matplotlib.pyplot as plt

    from .complexity import complexity

    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    depth = {n: complexity(n).weight_layers for n in names}
    color = {d: cycle[i % len(cycle)] for i, d in enumerate(sorted(set(depth.values())))}
    return {n: color[depth[n]] for n in names}


def plot_runs(
    runs: list[str],
    out: str | os.PathLike,
    labels: list[str] | None = None,
    title: str | None = None,
    x: str = "iterations",
    ax=None,
    colors: list[str] | None = None,
    y_top: float | None = None,
) -> Path:
    """Write a PNG of the runs' error curves; returns its path. ``colors``, one per run, default to
    matplotlib's cycle. ``y_top``: the y axis ends there (the paper's figures: 20 %), clipping the early
    epochs, or higher where a curve ends above it (a short run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if labels and len(labels) != len(runs):
        raise DeepresError(f"--label given {len(labels)} times for {len(runs)} runs")
    own_figure = ax is None
    if own_figure:
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    top = end = 0.0
    for i, run in enumerate(runs):
        rows = read_metrics(run)
        label = labels[i] if labels else run_label(run)
        color = colors[i] if colors else cycle[i % len(cycle)]
        xs = [r["step"] / 1e4 if x == "iterations" else r["epoch"] for r in rows]
        train = [r["train_error"] for r in rows]
        # A curve of a few points (a short run) gets markers: a single point draws no line.
        marker = "o" if len(rows) < 10 else None
        ax.plot(xs, train, "--", color=color, linewidth=0.9, marker=marker, markersize=3)
        held = [(xx, r["val_error"]) for xx, r in zip(xs, rows, strict=True) if "val_error" in r]
        if held:
            ax.plot([h[0] for h in held], [h[1] for h in held], "-", color=color, linewidth=2.2, label=label,
                    marker=marker, markersize=5)  # fmt: skip
        else:
            ax.plot([], [], "-", color=color, linewidth=2.2, label=label)
        top = max(top, max(train[len(train) // 10 :], default=0), max((h[1] for h in held), default=0))
        end = max(end, train[-1] if train else 0, held[-1][1] if held else 0)
    ax.set_xlabel("iter. (1e4)" if x == "iterations" else "epoch")
    ax.set_ylabel("error (%)")
    ax.set_ylim(0, min(100, max(5.0, top * 1.15) if y_top is None else max(y_top, end * 1.15)))
    ax.set_xlim(left=0)  # training starts at 0 (and a one-point run gets a readable axis)
    ax.grid(alpha=0.3)
    if runs:
        ax.legend(title="bold: validation, dashed: training", fontsize=8, title_fontsize=8)
    if title:
        ax.set_title(title)
    out = Path(out)
    if own_figure:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(out)
        plt.close(fig)
    return out


@dataclass(frozen=True)
class Panel:
    """One panel of ``plot_panels``: its title, runs, one label per run, optional colours, and
    optionally its own ``y_top`` (else ``plot_panels``'s)."""

    title: str
    runs: list[str]
    labels: list[str]
    colors: list[str] | None = None
    y_top: float | None = None


def plot_panels(
    panels: list[Panel], out: str | os.PathLike, shared_y: bool = False, marks: tuple[float, ...] = (),
    width: float = 5.5, height: float = 4.2, y_top: float | None = None,
) -> Path:  # fmt: skip
    """Write a PNG of ``plot_runs`` panels side by side (``width`` x ``height`` inches each); returns
    its path. ``shared_y``: one y range that fits every panel (a shared axis would otherwise keep the
    last panel's); ``marks``: x positions drawn as dotted verticals (say the lr drops); ``y_top``: as
    ``plot_runs``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), height), dpi=120, sharey=shared_y,
                             squeeze=False)  # fmt: skip
    top = 0.0
    for ax, panel in zip(axes[0], panels, strict=True):
        own_top = y_top if panel.y_top is None else panel.y_top
        plot_runs(panel.runs, out, labels=panel.labels, title=panel.title, ax=ax, colors=panel.colors, y_top=own_top)
        for x in marks:
            ax.axvline(x, color="grey", linestyle=":", linewidth=0.8)
        top = max(top, ax.get_ylim()[1])  # read now: a shared axis keeps only the last panel's range
    if shared_y:
        axes[0][0].set_ylim(0, top)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
