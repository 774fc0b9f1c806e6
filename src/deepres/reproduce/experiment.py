"""One contract for every experiment: an ``Experiment`` is told what was asked (a ``Request``: the
budget, the data, the run store, whether it may train, or which pretrained nets to measure) and
returns a ``Report`` (a title, a body, the runs it lacks); writing the report, its partial-report
note and its link to the logs happens here, once."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..io import write_text_atomic
from .report import missing_note


@dataclass(frozen=True)
class Request:
    folder: Path  # results/<experiment>: the report, its figures, the logs of its runs under runs/
    budget: str  # small | full
    data: str | None = None  # None: the budget's own data
    store: Path = Path("runs")  # the shared run store (checkpoints)
    train: bool = True  # False: report what is finished, name the rest
    pretrained: str | None = None  # a tag: measure the shipped NET:TAG nets instead of runs


@dataclass
class Report:
    title: str
    body: str  # markdown, everything between the title and the tail
    missing: list[str] = field(default_factory=list)  # runs not finished at this budget
    logs: bool = True  # the report rests on run logs kept in its runs/ folder

    def text(self, logged: bool = True) -> str:
        """The report; ``logged``: its runs/ folder holds logs (no link to a folder no run has made yet)."""
        tail = missing_note(self.missing) + ("\nLogs: [runs/](runs/).\n" if self.logs and logged else "")
        return f"# {self.title}\n\n{self.body.strip()}\n{tail}"


@dataclass(frozen=True)
class Experiment:
    name: str
    trains: bool  # it trains runs (and reads --data); else it counts or measures without training
    make: Callable[[Request], Report]
    summary: str = ""  # one line for `deepres reproduce --help`
    measures_pretrained: bool = False  # it can measure shipped pretrained nets instead of its runs

    def run(self, request: Request) -> Path:
        request.folder.mkdir(parents=True, exist_ok=True)
        path = request.folder / "report.md"
        report = self.make(request)
        if report.missing and request.train:
            # A run it lacks was held by another process (one per core work through one queue) and may
            # have finished since this one looked: the report says what is finished now, not then.
            report = self.make(dataclasses.replace(request, train=False))
        write_text_atomic(path, report.text(logged=(request.folder / "runs").is_dir()))
        return path
