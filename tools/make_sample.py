"""Regenerate the embedded CIFAR-10 sample (src/deepres/assets/cifar10-sample*) from the real archive.

    python tools/make_sample.py ../shared/data/cifar10-jpeg.tar.xz

Takes the first 500 training and 100 test images of every class (by file name), so the sample is
stratified and reproducible.
"""

import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from deepres.data import load_dataset
from deepres.data.sample import tile

PER_CLASS = {"train": 500, "test": 100}
ASSETS = Path(__file__).resolve().parents[1] / "src" / "deepres" / "assets"


def main(archive: str) -> None:
    bundle = load_dataset(archive)
    meta = {
        "classes": bundle.classes,
        "labels": {},
        "origin": f"{Path(archive).name}, first {PER_CLASS['train']}/{PER_CLASS['test']} per class of train/test",
    }
    for split, k in PER_CLASS.items():
        s = bundle.splits[split]
        index = np.concatenate([np.flatnonzero(s.labels == c)[:k] for c in range(len(bundle.classes))])
        buf = io.BytesIO()
        Image.fromarray(tile(s.images[index])).save(buf, "JPEG", quality=75, subsampling=2)
        (ASSETS / f"cifar10-sample-{split}.jpg").write_bytes(buf.getvalue())
        meta["labels"][split] = s.labels[index].tolist()
        print(split, len(index), f"{len(buf.getvalue()) / 1e6:.2f} MB")
    (ASSETS / "cifar10-sample.json").write_text(json.dumps(meta, separators=(",", ":")))


if __name__ == "__main__":
    main(sys.argv[1])
