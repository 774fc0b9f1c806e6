"""The paper's experiments as commands: ``deepres reproduce EXPERIMENT [--budget small|full]`` writes
``results/<experiment>/`` with a report.md (the paper's figure, ours, the difference), PNG figures and
the logs of the runs it used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import DeepresError
from . import cifar, complexity, paper_schedule, responses, shortcuts

BUDGETS = ("small", "full")
EXPERIMENTS: dict[str, Callable[..., Path]] = {
    "complexity": complexity.run,
    "cifar": cifar.run_cifar,
    "degradation": cifar.run_degradation,
    "shortcuts": shortcuts.run,
    "responses": responses.run,
    "paper-schedule": paper_schedule.run,
}
# Experiments that train (and take --data)
TRAINS = {"cifar", "degradation", "shortcuts", "responses", "paper-schedule"}


def reproduce(name: str, budget: str = "small", out: str | Path = "results", data: str | None = None,
              store: str | Path = "runs", train: bool = True) -> Path:  # fmt: skip
    """Run experiment ``name`` and return its report. Runs finished in the store ``store`` or logged by
    an earlier report under ``out`` are reused; the rest are trained, or with ``train=False`` left out
    (a partial report, naming them)."""
    if name not in EXPERIMENTS:
        raise DeepresError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    if budget not in BUDGETS:
        raise DeepresError(f"--budget {budget}: expected one of {', '.join(BUDGETS)}")
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    if name in TRAINS:
        return EXPERIMENTS[name](folder, budget, data, Path(store), train)
    return EXPERIMENTS[name](folder, budget)
