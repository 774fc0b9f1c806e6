"""The decode-once cache: decoded uint8 arrays on disk, keyed by the content they came from."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .dataset import DataBundle, ImageSet
from .folder import is_regular_file

# Bump when decoding changes, so old caches are not reused (2: 16-bit images rescaled; damaged tar
# member headers refused instead of ending the archive early).
FORMAT = 2


def cache_root() -> Path:
    """``$DEEPRES_CACHE``, else ``$XDG_CACHE_HOME/deepres``, else ``~/.cache/deepres``."""
    if os.environ.get("DEEPRES_CACHE"):
        return Path(os.environ["DEEPRES_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deepres"


def content_key(path: Path, *extra: str) -> str:
    """sha256 of a file's bytes, or of a folder's relative paths and file bytes, plus ``extra``."""
    h = hashlib.sha256(f"deepres-cache-{FORMAT}".encode())
    for e in extra:
        h.update(e.encode())
    # Folders count too: an empty class folder is an error the cache must not hide.
    entries = [path] if path.is_file() else sorted(path.rglob("*"))
    for f in entries:
        if f != path:  # fsencode: a name that is not UTF-8 (bytes kept as surrogates) hashes too
            h.update(os.fsencode(f.relative_to(path).as_posix()) + (b"/\0" if f.is_dir() else b"\0"))
        if f.is_dir():
            continue
        if not is_regular_file(f):  # never opened: a FIFO or a device would block or never end
            h.update(b"<not a regular file>")
            continue
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:32]


def _dir(key: str) -> Path:
    return cache_root() / "decoded" / key


def load_cached(key: str) -> DataBundle | None:
    d = _dir(key)
    try:
        meta = json.loads((d / "meta.json").read_text())
        splits = {
            s: ImageSet(
                np.load(d / f"{s}.images.npy", allow_pickle=False), np.load(d / f"{s}.labels.npy", allow_pickle=False)
            )
            for s in meta["splits"]
        }
    except (OSError, ValueError, KeyError):
        return None  # absent or damaged: decode again
    return DataBundle(meta["name"], meta["classes"], splits, meta["source"], meta.get("skipped", 0))


def save_cached(key: str, bundle: DataBundle) -> None:
    """Write atomically: a temporary folder renamed into place (a concurrent writer may win)."""
    final = _dir(key)
    if final.exists():
        return
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}."))
    except OSError:
        return  # a cache that cannot be written (read-only, full) only costs a decode next time
    try:
        for split, s in bundle.splits.items():
            assert isinstance(s, ImageSet)
            np.save(tmp / f"{split}.images.npy", s.images, allow_pickle=False)
            np.save(tmp / f"{split}.labels.npy", s.labels, allow_pickle=False)
        meta = {
            "name": bundle.name,
            "classes": bundle.classes,
            "splits": list(bundle.splits),
            "source": bundle.source,
            "skipped": bundle.skipped,
            "format": FORMAT,
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        os.replace(tmp, final)
    except OSError:
        pass  # a cache that cannot be written (full disk, read-only) only costs a decode next time
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
