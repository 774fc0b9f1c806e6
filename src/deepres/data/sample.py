"""The embedded default: 5,000 train / 1,000 test images of the real CIFAR-10, inside the package.

Stored as two mosaic PNGs (32x32 tiles, 100 per row), pixel-exact, plus a JSON of the labels and of
where each image sits in the official CIFAR-10's splits (``index``). ``tools/make_sample.py``
regenerates them from the pixel-exact archive.
"""

from __future__ import annotations

import io
import json
from importlib import resources

import numpy as np
from PIL import Image

from .dataset import DataBundle, ImageSet

NAME = "cifar10-sample"
TILE = 32
PER_ROW = 100


def untile(mosaic: np.ndarray, n: int) -> np.ndarray:
    rows = mosaic.shape[0] // TILE
    tiles = mosaic.reshape(rows, TILE, PER_ROW, TILE, -1).transpose(0, 2, 1, 3, 4)
    return tiles.reshape(rows * PER_ROW, TILE, TILE, -1)[:n]


def tile(images: np.ndarray) -> np.ndarray:
    n = len(images)
    rows = -(-n // PER_ROW)
    padded = np.zeros((rows * PER_ROW, TILE, TILE, images.shape[3]), np.uint8)
    padded[:n] = images
    return (
        padded.reshape(rows, PER_ROW, TILE, TILE, -1).transpose(0, 2, 1, 3, 4).reshape(rows * TILE, PER_ROW * TILE, -1)
    )


def _assets():
    return resources.files("deepres") / "assets"


def sample_meta() -> dict:
    """The sample's JSON: classes, labels, files, origin, the source archive's sha256 and ``index``."""
    return json.loads((_assets() / "cifar10-sample.json").read_text())


def sample_index(split: str) -> np.ndarray:
    """Where the sample's images of ``split`` sit in the official CIFAR-10's split of that name."""
    return np.array(sample_meta()["index"][split], dtype=np.int64)


def load_sample() -> DataBundle:
    meta = sample_meta()
    splits = {}
    for split in ("train", "test"):
        labels = np.array(meta["labels"][split], dtype=np.int64)
        with Image.open(io.BytesIO((_assets() / meta["files"][split]).read_bytes())) as im:
            mosaic = np.asarray(im.convert("RGB"))
        splits[split] = ImageSet(untile(mosaic, len(labels)), labels)
    return DataBundle(NAME, meta["classes"], splits, source=f"embedded sample ({meta['origin']})")
