"""Image-folder datasets (``root/<split>/<class>/*.jpg|png...`` or ``root/<class>/...``) of any size.

The tree may be a folder or an archive's members. Images of one size that fit the memory budget are
decoded once into a uint8 array; otherwise the split stays a list of files, decoded by workers.
"""

from __future__ import annotations

import io
import os
import stat
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DeepresError
from ..hardware import usable_cores
from .dataset import FileSet, ImageSet

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
IMAGE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass
class Tree:
    """Files of a folder (``root`` set) or of an archive read into memory (``files`` set)."""

    origin: str
    root: Path | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    # Names that are not regular files (a FIFO, a link to a device or to nothing): never opened, as
    # reading a FIFO or /dev/zero would block or never end.
    irregular: set[str] = field(default_factory=set)

    @classmethod
    def from_dir(cls, root: Path) -> Tree:
        names: dict[str, bytes] = {}
        dirs: set[str] = set()
        irregular: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = Path(dirpath).relative_to(root)
            if rel != Path("."):
                dirs.add(rel.as_posix())
            for fn in filenames:
                if not fn.startswith("."):
                    name = (rel / fn).as_posix()
                    names[name] = b""  # contents read on demand
                    if not is_regular_file(root / name):
                        irregular.add(name)
        return cls(str(root), root=root, files=names, dirs=dirs, irregular=irregular)

    def names(self) -> list[str]:
        return sorted(self.files)

    def read(self, name: str) -> bytes:
        if name in self.irregular:
            raise DeepresError(f"{self.origin}: {name} is not a regular file (a pipe, device or broken link)")
        return (self.root / name).read_bytes() if self.root is not None else self.files[name]

    def size(self, name: str) -> int:
        return (self.root / name).stat().st_size if self.root is not None else len(self.files[name])


@dataclass
class Layout:
    """Which files form which split and class."""

    classes: list[str]
    splits: dict[str, list[tuple[str, int]]]  # split -> [(file name, label)]
    rejected: list[str]  # files inside class folders that are not images by their extension


def _strip_common_top(names: list[str]) -> str:
    """A single folder that contains everything (e.g. 'cifar10-jpeg/'), to be looked through."""
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    if len(tops) == 1 and all("/" in n for n in names):
        top = tops.pop()
        if top.lower() not in SPLIT_NAMES:
            return top + "/"
    return ""


def image_folder_layout(tree: Tree) -> Layout:
    names = [n for n in tree.names() if not n.rsplit("/", 1)[-1].startswith(".")]
    base = ""
    while top := _strip_common_top(names):  # look through wrappers such as data/cifar10-jpeg/
        base += top
        names = [n[len(top) :] for n in names]
    dirs = {d[len(base) :] for d in tree.dirs if d.startswith(base) and len(d) > len(base)}
    by_split: dict[str, dict[str, list[str]]] = {}
    rejected: list[str] = []
    for name in names:
        parts = name.split("/")
        if len(parts) < 2:
            continue  # files beside the class folders (README, LICENSE) are not samples
        if parts[0].lower() in SPLIT_NAMES:
            if len(parts) < 3:
                continue
            split, cls = SPLIT_NAMES[parts[0].lower()], parts[1]
        else:
            split, cls = "train", parts[0]
        full = base + name
        if os.path.splitext(name)[1].lower() in IMAGE_EXTS:
            by_split.setdefault(split, {}).setdefault(cls, []).append(full)
        else:
            rejected.append(full)
    # Class folders without a single image: an error the user should hear about.
    for d in sorted(dirs):
        parts = PurePosixPath(d).parts
        if len(parts) == 2 and parts[0].lower() in SPLIT_NAMES:
            split, cls = SPLIT_NAMES[parts[0].lower()], parts[1]
        elif len(parts) == 1 and parts[0].lower() not in SPLIT_NAMES:
            split, cls = "train", parts[0]
        else:
            continue
        if not by_split.get(split, {}).get(cls) and not any(r.startswith(base + d + "/") for r in rejected):
            raise DeepresError(f"{tree.origin}: class folder {base + d}/ has no images")
    if "train" not in by_split and "test" not in by_split:
        raise DeepresError(
            f"{tree.origin}: found no images in <class>/ or <split>/<class>/ folders "
            f"(extensions: {', '.join(sorted(IMAGE_EXTS))})"
        )
    reference = by_split.get("train") or by_split["test"]
    classes = sorted(reference)
    index = {c: i for i, c in enumerate(classes)}
    splits: dict[str, list[tuple[str, int]]] = {}
    for split, per_class in by_split.items():
        unknown = sorted(set(per_class) - set(index))
        if unknown:
            raise DeepresError(f"{tree.origin}: {split} has classes not in train: {', '.join(unknown[:5])}")
        splits[split] = [(n, index[c]) for c in sorted(per_class) for n in sorted(per_class[c])]
    return Layout(classes, splits, rejected)


def _parallel(fn, items: list, threads: bool = True) -> list:
    """``[fn(x) for x in items]``, on all cores if ``threads``: PIL releases the GIL while it decodes,
    which pays for large images; for tiny ones (CIFAR) the per-image Python work dominates and
    threads only contend for the GIL. Chunked, as a future per item costs more than a tiny decode."""
    workers = usable_cores()
    if not threads or workers == 1:
        return [fn(x) for x in items]
    size = max(1, -(-len(items) // (workers * 4)))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [r for part in pool.map(lambda c: [fn(x) for x in c], chunks) for r in part]


def is_regular_file(path: Path) -> bool:
    """Whether ``path`` (followed through links) is a regular file: safe to open and read to its end."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _probe(tree: Tree, name: str) -> tuple[tuple[int, int], str] | None:
    """(size, mode) from the image header, or None if it is not an image."""
    if name in tree.irregular:
        return None
    try:
        source = tree.root / name if tree.root is not None else io.BytesIO(tree.files[name])
        with Image.open(source) as im:
            return im.size, im.mode
    except IMAGE_ERRORS:
        return None


def to_8bit(im: Image.Image, channels: int) -> Image.Image:
    """``im`` as 8-bit L or RGB. PIL's own convert clips a 16-bit or 32-bit grey image (16-bit PNG,
    TIFF) to 255, which would make it a constant white image: rescale its range instead."""
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        high = a.max(initial=0)
        if im.mode.startswith("I;16"):
            top = 65535.0  # the bit depth says so, however dark the image
        elif im.mode == "F":
            top = 1.0 if high <= 1.0 else 255.0
        else:  # "I", 32-bit: PIL's mode for some 16-bit PNGs
            top = 255.0 if high <= 255 else 65535.0
        im = Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    return im.convert("L" if channels == 1 else "RGB")


def decode(data: bytes | Path, channels: int) -> np.ndarray:
    """Decode one image to uint8 (H, W, channels); raises one of IMAGE_ERRORS if it cannot."""
    with Image.open(data if isinstance(data, Path) else io.BytesIO(data)) as im:
        arr = np.asarray(to_8bit(im, channels), dtype=np.uint8)
    return arr[..., None] if channels == 1 else arr


def load_image_folder(
    tree: Tree, budget_bytes: int, skip_bad: bool = False
) -> tuple[list[str], dict[str, ImageSet | FileSet], int]:
    """(classes, splits, number of skipped bad files). In memory if one size and within budget."""
    layout = image_folder_layout(tree)
    bad: list[str] = list(layout.rejected)
    entries = [(s, n, y) for s, items in layout.splits.items() for n, y in items]
    probes = _parallel(lambda e: _probe(tree, e[1]), entries)
    kept = []
    for e, p in zip(entries, probes, strict=True):
        if p is None:
            bad.append(e[1])
        else:
            kept.append((e, p))
    if bad and not skip_bad:
        raise DeepresError(
            f"{tree.origin}: {bad[0]} is not a readable image"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
            + "; fix or remove it, or pass --skip-bad-images true to skip such files"
        )
    if not kept:
        raise DeepresError(f"{tree.origin}: no readable images")
    sizes = Counter(p[0] for _, p in kept)
    channels = 1 if all(p[1] in ("L", "1", "F") or p[1].startswith("I") for _, p in kept) else 3
    (w, h), _ = sizes.most_common(1)[0]
    fits = len(sizes) == 1 and len(kept) * w * h * channels <= budget_bytes
    splits: dict[str, ImageSet | FileSet] = {}
    if not fits:
        if tree.root is None:
            raise _NeedsExtraction()
        distinct = tuple(size for size, _ in sizes.most_common())
        for split in layout.splits:
            items = [(tree.root / e[1], e[2]) for e, _ in kept if e[0] == split]
            splits[split] = FileSet([p for p, _ in items], np.array([y for _, y in items]), channels, distinct)
        return layout.classes, splits, len(bad)

    def decode_entry(e):
        try:
            return decode(tree.root / e[1] if tree.root is not None else tree.files[e[1]], channels)
        except IMAGE_ERRORS:
            return None

    arrays = _parallel(decode_entry, [e for e, _ in kept], threads=w * h >= 64 * 64)
    for (e, _), a in zip(kept, arrays, strict=True):
        if a is None and not skip_bad:
            raise DeepresError(
                f"{tree.origin}: {e[1]} is truncated or corrupt; fix or remove it, "
                "or pass --skip-bad-images true to skip such files"
            )
    skipped = len(bad) + sum(a is None for a in arrays)
    for split in layout.splits:
        pairs = [(a, e[2]) for (e, _), a in zip(kept, arrays, strict=True) if e[0] == split and a is not None]
        if pairs:
            splits[split] = ImageSet(np.stack([a for a, _ in pairs]), np.array([y for _, y in pairs]))
    return layout.classes, splits, skipped


class _NeedsExtraction(Exception):
    """An archive whose images must stay on disk (mixed sizes or too big): extract it, then stream."""
