"""Run directories: what they hold and how it is read (``RunDir``), and one training process per
directory: it is claimed (created if need be, and locked) before anything else is done, and released
when the process ends, however it ends (``RunDirClaim``).

The lock is an ``flock`` on ``RUN_DIR/.lock``: the kernel drops it when its process dies, even by
``kill -9``, so a stale lock never blocks a resume. Two trainings started on the same ``--out``
would otherwise both run and leave a directory that mixes their files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tomllib
from pathlib import Path

from ..errors import DeepresError, RunInUse

LOCK = ".lock"


class RunDirClaim:
    def __init__(self, path: Path, flag: str = "--out"):
        self.path = path
        self.created = False
        try:
            if path.exists() and not path.is_dir():
                raise DeepresError(f"{flag} {path}: exists and is not a folder; expected a run directory")
            if not path.exists():
                path.mkdir(parents=True)
                self.created = True
            self.fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            self._remove_if_created()
            raise DeepresError(f"{flag} {path}: cannot write a run directory there ({e.strerror})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(self.fd, 32).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise RunInUse(
                f"{path}: in use by another deepres training (pid {other}); wait for it to end or choose another {flag}"
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self, failed: bool = False) -> None:
        """Unlock; after a failed set-up, also remove the directory if this claim created it."""
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        if failed:
            self._remove_if_created()

    def _remove_if_created(self) -> None:
        if self.created:
            with contextlib.suppress(OSError):
                (self.path / LOCK).unlink(missing_ok=True)
                self.path.rmdir()  # only if empty: nothing else was written


class RunDir:
    """A run directory's files: the one place that names them and knows how to read them.

    recipe.toml (the resolved recipe), env.json (the machine of every segment), metrics.jsonl (one
    line per epoch), last.pt and best.pt (checkpoints), test.json (the final test), log.txt, and for
    the responses experiment responses.json (its measured layer stds)."""

    RECIPE, ENV, METRICS, TEST, LOG = "recipe.toml", "env.json", "metrics.jsonl", "test.json", "log.txt"
    RESPONSES, LAST, BEST = "responses.json", "last.pt", "best.pt"
    LOGS = (RECIPE, ENV, METRICS, TEST, LOG, RESPONSES)  # what a report keeps of a run (not the checkpoints)

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def finished(self) -> bool:
        return (self.path / self.TEST).is_file()

    def metrics(self) -> list[dict]:
        """One dict per finished epoch; a one-line error if there are none or a line is damaged."""
        path = self.path / self.METRICS
        if not path.is_file():
            raise DeepresError(f"{self.path}: no {self.METRICS}; expected a deepres run directory")
        rows = []
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise DeepresError(f"{path}:{i}: not a JSON line") from None
        if not rows:
            raise DeepresError(f"{path}: empty (the run has not finished an epoch yet)")
        return rows

    def recipe(self) -> dict:
        return tomllib.loads((self.path / self.RECIPE).read_text())

    def env(self) -> dict:
        path = self.path / self.ENV
        return json.loads(path.read_text()) if path.is_file() else {}

    def test(self) -> dict:
        return json.loads((self.path / self.TEST).read_text())

    def test_error(self) -> float:
        """Top-1 test error (%) of the final weights (last.pt)."""
        return self.test()["test"]["top1_error"]

    def checkpoint(self, which: str = "best") -> Path:
        """``best.pt`` (or ``last.pt``), falling back to the other."""
        for name in (f"{which}.pt", self.LAST):
            if (self.path / name).is_file():
                return self.path / name
        raise DeepresError(f"{self.path}: no {which}.pt or last.pt in this folder; expected a run directory")
