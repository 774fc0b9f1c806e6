"""CIFAR-10/100 python pickle batches (read without unpickling arbitrary objects) and their download."""

from __future__ import annotations

import hashlib
import io
import pickle
import urllib.request
from pathlib import Path

import numpy as np

from ..errors import DeepresError
from ..io import atomic_write
from .archive import safe_extract

# name: (the official archive, its md5, the folder it extracts to)
DOWNLOADS = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                "cifar-10-batches-py"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                 "cifar-100-python"),
}  # fmt: skip
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# The only globals a CIFAR pickle needs: numpy's array reconstruction, and the bytes constructor
# that Python 3 writes into protocol-2 pickles. Anything else is refused.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_pickle(data: bytes, origin: str) -> dict:
    try:
        obj = _ArraysOnly(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:
        raise DeepresError(f"{origin}: not a CIFAR pickle batch ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DeepresError(f"{origin}: not a CIFAR pickle batch (a {type(obj).__name__}, expected a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _batch_arrays(batch: dict, label_key: str, origin: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except KeyError as e:
        raise DeepresError(f"{origin}: CIFAR batch without {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise DeepresError(f"{origin}: CIFAR batch whose data or labels are not numbers ({e})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DeepresError(
            f"{origin}: expected data of shape (N, 3072) and N labels, found {data.shape} and {len(labels)}"
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def _names(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def detect_cifar(files: dict[str, bytes]) -> str | None:
    names = {Path(n).name for n in files}
    if {"data_batch_1", "test_batch"} <= names:
        return "cifar10"
    if {"train", "test", "meta"} <= names:
        return "cifar100"
    return None


def load_cifar_pickles(files: dict[str, bytes], origin: str) -> tuple[list[str], dict]:
    """(classes, {split: (images NHWC, labels)}) from the files of cifar-10-batches-py or cifar-100-python."""
    by_name = {Path(n).name: n for n in files}
    kind = detect_cifar(files)
    if kind == "cifar10":
        train_names = [f"data_batch_{i}" for i in range(1, 6)]
        missing = [n for n in train_names if n not in by_name]
        if missing:
            raise DeepresError(f"{origin}: missing CIFAR-10 batches {', '.join(missing)}")
        meta = "batches.meta"
        classes = (
            _names(read_pickle(files[by_name[meta]], f"{origin}/{meta}")["label_names"])
            if meta in by_name
            else CIFAR10_CLASSES
        )
        label_key, groups = "labels", {"train": train_names, "test": ["test_batch"]}
    elif kind == "cifar100":
        classes = _names(read_pickle(files[by_name["meta"]], f"{origin}/meta")["fine_label_names"])
        label_key, groups = "fine_labels", {"train": ["train"], "test": ["test"]}
    else:
        raise DeepresError(f"{origin}: no CIFAR pickle batches found")
    splits = {}
    for split, names in groups.items():
        parts = [
            _batch_arrays(read_pickle(files[by_name[n]], f"{origin}/{n}"), label_key, f"{origin}/{n}") for n in names
        ]
        splits[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return classes, splits


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, md5: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (atomically) and verify its md5; a mismatch deletes the file."""
    if dest.is_file() and md5sum(dest) == md5:
        return dest
    from tqdm import tqdm

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_write(dest) as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=None) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
    except OSError as e:  # URLError, HTTPError and socket errors are all OSErrors
        raise DeepresError(f"downloading {url} failed: {e}") from None
    actual = md5sum(dest)
    if actual != md5:
        dest.unlink()
        raise DeepresError(f"{url}: md5 {actual} does not match the expected {md5}; the download was deleted")
    return dest


def download_and_extract(url: str, md5: str, root: Path) -> Path:
    """Fetch an archive into ``root`` and extract it there safely; returns ``root``."""
    archive = download(url, root / Path(url).name, md5)
    safe_extract(archive, root)
    return root


def download_named(name: str, root: Path, url: str | None = None, md5: str | None = None) -> Path:
    """The folder of the official dataset ``name`` (see DOWNLOADS) under ``root``, fetched (from
    ``url`` with ``md5``, if given, else the official source) and extracted if not there yet."""
    official_url, official_md5, folder = DOWNLOADS[name]
    if not (root / folder).is_dir():
        download_and_extract(url or official_url, md5 or official_md5, root)
    return root / folder
