"""Datasets as decoded uint8 arrays (in memory) or as file lists (streamed), and their splits."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DeepresError


@dataclass
class ImageSet:
    """Decoded images of one split: ``images`` is uint8 (N, H, W, C), ``labels`` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.labels = np.asarray(self.labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: np.ndarray) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index])


@dataclass
class FileSet:
    """Images that stay on disk and are decoded by worker processes (too big, or of mixed sizes)."""

    paths: list[Path]
    labels: np.ndarray
    channels: int = 3
    sizes: tuple[tuple[int, int], ...] = ()  # the distinct (width, height) of its images, most common first

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> FileSet:
        return FileSet([self.paths[i] for i in index], self.labels[index], self.channels, self.sizes)


Split = ImageSet | FileSet


@dataclass
class DataBundle:
    """A dataset: class names and its splits ('train', optionally 'val', 'test')."""

    name: str
    classes: list[str]
    splits: dict[str, Split] = field(default_factory=dict)
    source: str = ""
    skipped: int = 0  # unreadable files left out (--skip-bad-images)

    def __post_init__(self) -> None:
        """Every loader's labels are checked here, where data enters: a label that is not a class
        index would otherwise crash the loss after training started, or silently train a wrong head."""
        origin = self.source or self.name
        for name, split in self.splits.items():
            if len(split) == 0:
                raise DeepresError(f"{origin}: the {name} split has no images")
            low, high = int(split.labels.min()), int(split.labels.max())
            if low < 0 or high >= len(self.classes):
                bad = high if high >= len(self.classes) else low
                raise DeepresError(
                    f"{origin}: {name} label {bad} is not a class index (expected 0 to {len(self.classes) - 1} "
                    f"for its {len(self.classes)} classes)"
                )

    @property
    def channels(self) -> int:
        s = self.splits["train"] if "train" in self.splits else next(iter(self.splits.values()))
        return s.image_shape[2] if isinstance(s, ImageSet) else s.channels

    @property
    def in_memory(self) -> bool:
        return all(isinstance(s, ImageSet) for s in self.splits.values())

    def describe(self) -> str:
        parts = ", ".join(f"{k} {len(v):,}" for k, v in self.splits.items())
        return f"{self.name}: {len(self.classes)} classes; {parts}"

    def require(self, split: str) -> Split:
        if split not in self.splits:
            raise DeepresError(f"{self.source or self.name}: no '{split}' split (found: {', '.join(self.splits)})")
        return self.splits[split]


def stratified_split(labels: np.ndarray, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): ``n_val`` images held out with the class proportions of ``labels``.

    Seeded and independent of the training seed's other uses, so every run of a recipe validates on
    the same images (the paper's 45k/5k CIFAR split is ``n_val=5000``).
    """
    n = len(labels)
    if not 0 < n_val < n:
        raise DeepresError(f"val_split={n_val}: expected between 1 and {n - 1} (the training set has {n} images)")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    # Largest-remainder allocation so that the per-class counts sum exactly to n_val.
    quota = counts * n_val / n
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind="stable")[: n_val - take.sum()]:
        take[i] += 1
    val = []
    for c, k in zip(classes, take, strict=True):
        members = np.flatnonzero(labels == c)
        val.append(rng.choice(members, size=k, replace=False))
    val_idx = np.sort(np.concatenate(val))
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def fingerprint(bundle: DataBundle) -> dict[str, list]:
    """{split: [images, sha256 of its labels and pixels (or file names)]}: what a run trained on, kept
    in its checkpoints so that a resume on other data is refused rather than silently inexact."""
    out = {}
    for name, split in bundle.splits.items():
        h = hashlib.sha256(split.labels.astype("<i8").tobytes())
        if isinstance(split, ImageSet):
            h.update(str(split.images.shape).encode())
            h.update(np.ascontiguousarray(split.images).data)
        else:
            for p in split.paths:
                h.update(os.fsencode(p) + b"\0")
        out[name] = [len(split), h.hexdigest()[:16]]
    return out


def describe_change(before: dict, after: dict) -> str:
    """What differs between two fingerprints, in a few words."""
    changes = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            changes.append(f"no {name} split now")
        elif name not in before:
            changes.append(f"a new {name} split")
        elif before[name][0] != after[name][0]:
            changes.append(f"{name}: {before[name][0]:,} -> {after[name][0]:,} images")
        elif before[name][1] != after[name][1]:
            changes.append(f"{name}: same size, other images or labels")
    return "; ".join(changes)
