"""The paper's experiments as commands: ``deepres reproduce EXPERIMENT [--budget small|full]`` writes
``results/<experiment>/`` with a report.md (the paper's figure, ours, the difference), PNG figures and
the logs of the runs it used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import DeepresError
from . import complexity

BUDGETS = ("small", "full")
EXPERIMENTS: dict[str, Callable[[Path, str], Path]] = {"complexity": complexity.run}


def reproduce(name: str, budget: str = "small", out: str | Path = "results") -> Path:
    """Run experiment ``name`` and return its report."""
    if name not in EXPERIMENTS:
        raise DeepresError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    if budget not in BUDGETS:
        raise DeepresError(f"--budget {budget}: expected one of {', '.join(BUDGETS)}")
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    return EXPERIMENTS[name](folder, budget)
