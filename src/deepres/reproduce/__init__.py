"""The paper's experiments as commands: ``deepres reproduce EXPERIMENT [--budget small|full]`` writes
``results/<experiment>/`` with a report.md (the paper's figure, ours, the difference), PNG figures and
the logs of the runs it used. Every experiment is an ``Experiment`` (``experiment.py``): it is
handed a ``Request`` and returns a ``Report``."""

from __future__ import annotations

from pathlib import Path

from ..errors import DeepresError
from . import ablation, cifar, complexity, depth, paper_schedule, responses, shortcuts
from .experiment import Experiment, Request

BUDGETS = ("small", "full")
EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (complexity.EXPERIMENT, cifar.CIFAR, cifar.DEGRADATION, shortcuts.EXPERIMENT, responses.EXPERIMENT,
              paper_schedule.EXPERIMENT, ablation.EXPERIMENT, depth.EXPERIMENT)
}  # fmt: skip


def reproduce(name: str, budget: str = "small", out: str | Path = "results", data: str | None = None,
              store: str | Path = "runs", train: bool = True, pretrained: str | None = None) -> Path:  # fmt: skip
    """Run experiment ``name`` and return its report. Runs finished in the store ``store`` or logged by
    an earlier report under ``out`` are reused; the rest are trained, or with ``train=False`` left out
    (a partial report, naming them). ``pretrained``: a tag; an experiment that measures trained nets
    (responses) measures the shipped ``NET:TAG`` nets instead, training nothing."""
    if name not in EXPERIMENTS:
        raise DeepresError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    if budget not in BUDGETS:
        raise DeepresError(f"--budget {budget}: expected one of {', '.join(BUDGETS)}")
    experiment = EXPERIMENTS[name]
    if data is not None and not experiment.trains:
        raise DeepresError(f"--data: {name} trains nothing and reads no data")
    if pretrained is not None and not experiment.measures_pretrained:
        which = ", ".join(e.name for e in EXPERIMENTS.values() if e.measures_pretrained)
        raise DeepresError(f"--pretrained: {name} reports on nets it trains; only {which} measures pretrained nets")
    return experiment.run(Request(Path(out) / name, budget, data, Path(store), train, pretrained))
