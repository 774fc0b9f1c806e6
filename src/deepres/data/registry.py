"""``load_dataset``: one entry point for named datasets, folders and archives of every format."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DeepresError
from .archive import ARCHIVE_SUFFIXES, is_archive, read_archive, safe_extract
from .cache import cache_root, content_key, load_cached, save_cached
from .cifar import DOWNLOADS, detect_cifar, download_named, load_cifar_pickles
from .dataset import DataBundle, ImageSet
from .folder import Tree, _NeedsExtraction, load_image_folder
from .idx import DIGIT_CLASSES, FASHION_CLASSES, IDX_FILES, load_idx_splits
from .sample import NAME as SAMPLE_NAME
from .sample import load_sample

NAMED = (SAMPLE_NAME, "cifar10", "cifar100", "fashion-mnist", "mnist")


def default_budget() -> int:
    """Bytes of decoded images kept in memory: ``$DEEPRES_MEMORY_BUDGET`` GB, else 40 % of the RAM."""
    if os.environ.get("DEEPRES_MEMORY_BUDGET"):
        return int(float(os.environ["DEEPRES_MEMORY_BUDGET"]) * 2**30)
    return int(0.4 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def data_root() -> Path:
    """Where downloads go: ``$DEEPRES_DATA``, else ``<cache>/datasets``."""
    return Path(os.environ.get("DEEPRES_DATA") or cache_root() / "datasets").expanduser()


def load_dataset(spec: str | os.PathLike, budget_bytes: int | None = None, skip_bad: bool = False) -> DataBundle:
    """A dataset by name (see ``NAMED``) or path: an image-folder tree, CIFAR pickle batches or IDX
    files, as a folder or an archive. Decoded once and cached when it fits ``budget_bytes``."""
    budget = default_budget() if budget_bytes is None else budget_bytes
    spec = str(spec)
    if spec in NAMED:
        return _load_named(spec, budget, skip_bad)
    try:
        path = Path(spec).expanduser()
    except RuntimeError:  # ~user of no such user
        raise DeepresError(f"{spec}: no such user's home folder to expand '~' in") from None
    if not path.exists():
        raise DeepresError(
            f"{spec}: no such file or folder; expected a dataset folder, an archive "
            f"({', '.join(ARCHIVE_SUFFIXES)}) or one of: {', '.join(NAMED)}"
        )
    if path.is_file() and not is_archive(path):
        raise DeepresError(f"{path}: not a folder or an archive ({', '.join(ARCHIVE_SUFFIXES)})")
    total = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    # Hashing costs a read of every byte: only worth it for what will be decoded and cached.
    key = content_key(path, f"skip_bad={skip_bad}") if total <= budget else None
    if key and (cached := load_cached(key)) is not None:
        return cached
    bundle = _parse(path, budget, skip_bad)
    if key and bundle.in_memory:
        save_cached(key, bundle)
    return bundle


def _parse(path: Path, budget: int, skip_bad: bool) -> DataBundle:
    origin = str(path)
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        name = name.removesuffix(suffix)
    if is_archive(path):
        got = read_archive(path, budget)
        tree = _extracted(path) if got is None else Tree(origin, files=got[0], dirs=got[1])
    else:
        tree = Tree.from_dir(path)
    names = tree.names()
    if detect_cifar(dict.fromkeys(names, b"")):
        classes, arrays = load_cifar_pickles({n: tree.read(n) for n in names}, origin)
        return DataBundle(name, classes, {s: ImageSet(*a) for s, a in arrays.items()}, origin)
    if any(Path(n).name.startswith(IDX_FILES["train"][0]) for n in names):
        arrays = load_idx_splits({n: tree.read(n) for n in names if "idx" in Path(n).name}, origin)
        classes = FASHION_CLASSES if "fashion" in origin.lower() else DIGIT_CLASSES
        return DataBundle(name, classes, {s: ImageSet(*a) for s, a in arrays.items()}, origin)
    try:
        classes, splits, skipped = load_image_folder(tree, budget, skip_bad)
    except _NeedsExtraction:  # an archive of mixed-size images: they have to be streamed from disk
        classes, splits, skipped = load_image_folder(_extracted(path), budget, skip_bad)
    return DataBundle(name, classes, splits, origin, skipped)


def _extracted(archive: Path) -> Tree:
    target = cache_root() / "extracted" / content_key(archive)
    done = target / ".complete"
    if not done.exists():
        try:
            safe_extract(archive, target)
            done.touch()
        except OSError as e:
            raise DeepresError(
                f"{archive}: its images must be extracted to stream them, and the cache {cache_root()} cannot "
                f"be written ({e.strerror}); set DEEPRES_CACHE to a writable folder, or extract it yourself"
            ) from None
    return Tree.from_dir(target)


def _load_named(name: str, budget: int, skip_bad: bool) -> DataBundle:
    if name == SAMPLE_NAME:
        return load_sample()
    if name in DOWNLOADS:
        bundle = load_dataset(download_named(name, data_root()), budget, skip_bad)
        bundle.name = name
        return bundle
    candidates = [Path("/usr/share/datasets") / name, data_root() / name]
    for c in candidates:
        if c.is_dir():
            bundle = load_dataset(c, budget, skip_bad)
            bundle.name = name
            return bundle
    hint = " (Debian: apt-get install dataset-fashion-mnist)" if name == "fashion-mnist" else ""
    raise DeepresError(f"{name}: not found in {' or '.join(map(str, candidates))}{hint}")
