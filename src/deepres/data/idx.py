"""IDX files (MNIST, Fashion-MNIST), raw or gzipped, checked for magic and length."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DeepresError

IDX_UBYTE = 0x08
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DIGIT_CLASSES = [str(i) for i in range(10)]


def parse_idx(data: bytes, origin: str, ndim: int) -> np.ndarray:
    """Decode an IDX payload of unsigned bytes with ``ndim`` dimensions (3: images, 1: labels)."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DeepresError(f"{origin}: corrupt gzip stream ({e})") from None
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != IDX_UBYTE or data[3] != ndim:
        raise DeepresError(
            f"{origin}: not an IDX file of {ndim}-d unsigned bytes "
            f"(magic {data[:4].hex() or 'missing'}, expected 000008{ndim:02x})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DeepresError(f"{origin}: truncated IDX header")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DeepresError(f"{origin}: expected {expected} bytes for dimensions {dims}, found {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


IDX_FILES = {  # split -> (images stem, labels stem)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def find_idx_file(files: dict[str, bytes] | Path, stem: str) -> str | None:
    names = files.keys() if isinstance(files, dict) else [str(p.relative_to(files)) for p in files.rglob("*")]
    for name in sorted(names):
        base = Path(name).name
        if base in (stem, stem + ".gz"):
            return name
    return None


def load_idx_splits(files: dict[str, bytes] | Path, origin: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (images (N, H, W, 1), labels)} from the four standard IDX files in a tree."""
    out = {}
    for split, (img_stem, lbl_stem) in IDX_FILES.items():
        img_name, lbl_name = find_idx_file(files, img_stem), find_idx_file(files, lbl_stem)
        if img_name is None or lbl_name is None:
            if split == "train":
                raise DeepresError(f"{origin}: expected {img_stem}[.gz] and {lbl_stem}[.gz]")
            continue
        read = (lambda n: files[n]) if isinstance(files, dict) else (lambda n: (files / n).read_bytes())
        images = parse_idx(read(img_name), f"{origin}/{img_name}", 3)
        labels = parse_idx(read(lbl_name), f"{origin}/{lbl_name}", 1)
        if len(images) != len(labels):
            raise DeepresError(f"{origin}: {img_name} has {len(images)} images but {lbl_name} {len(labels)} labels")
        out[split] = (images[..., None].copy(), labels.astype(np.int64))
    return out
