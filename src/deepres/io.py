"""Crash-safe file writing (a file is either the old version or the complete new one), and checksums."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import DeepresError

# File names that are not UTF-8 reach Python as str with surrogates: written back as the same bytes.
TEXT_ERRORS = "surrogateescape"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _no_space(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, errno.EDQUOT)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Write to a temporary file beside ``path``, flush, fsync, then rename over ``path``.

    A crash (even ``kill -9``) at any moment leaves either the previous file or the new one, never a
    half-written one. A full disk raises :class:`DeepresError` and keeps the previous file.
    """
    path = Path(path)
    if path.is_dir():
        raise DeepresError(f"{path}: a folder; expected the name of a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a finished file gets the usual mode
        text = {} if "b" in mode else {"encoding": "utf-8", "errors": TEXT_ERRORS}
        with os.fdopen(fd, mode, **text) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and _no_space(e):
            raise DeepresError(f"no space left on the device writing {path}; the previous version is kept") from None
        raise
    _fsync_dir(path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def torch_bytes(obj: object) -> memoryview:
    """``torch.save`` into memory. Writing those bytes ourselves keeps a full disk an OSError with its
    errno (torch's own zip writer reports it as an opaque RuntimeError)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getbuffer()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log; a full disk is a clear error, not a traceback."""
    try:
        with open(path, "a", encoding="utf-8", errors=TEXT_ERRORS) as f:
            f.write(line + "\n")
    except OSError as e:
        if _no_space(e):
            raise DeepresError(f"no space left on the device writing {path}") from None
        raise


def sha256(path: str | os.PathLike) -> str:
    """The file's sha256 (hex), read in chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
