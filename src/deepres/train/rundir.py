"""One training process per run directory: the directory is claimed (created if need be, and locked)
before anything else is done, and released when the process ends, however it ends.

The lock is an ``flock`` on ``RUN_DIR/.lock``: the kernel drops it when its process dies, even by
``kill -9``, so a stale lock never blocks a resume. Two trainings started on the same ``--out``
would otherwise both run and leave a directory that mixes their files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ..errors import DeepresError

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
            raise DeepresError(
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
