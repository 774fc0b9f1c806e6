"""Ship a finished run's final weights as a pretrained net in the package (src/deepres/weights/).

    python tools/ship_pretrained.py runs/cifar10-lossless-cifar-paper/resnet20-s0 --tag cifar10 \
        --source results/paper-schedule/runs/resnet20-s0

Measures the weights' test error in fp32 on the run's own test split (that number goes into the
net's pretrained_cfg, so loading them gives exactly it), writes NET-TAG.safetensors and its sha256 in
index.json. Commit both, and the run's logs under results/ (the cfg names the run).
"""

import argparse
from pathlib import Path

from deepres.pretrained import STORE, load_pretrained, package


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a finished run directory (its last.pt and test.json)")
    ap.add_argument("--tag", required=True, help="the data the net was trained on, e.g. cifar10")
    ap.add_argument("--store", default=str(STORE), help="where to write (default: the package's weights/)")
    ap.add_argument("--source", help="the run's name in the cfg: where its logs are committed (default: RUN)")
    args = ap.parse_args()
    name = package(Path(args.run), args.tag, Path(args.store), args.source)
    cfg = load_pretrained(name, Path(args.store))["pretrained_cfg"]
    print(f"{name}: test error {cfg['test_error']:.2f} % on {cfg['test_images']:,} images (fp32, centre crop)")


if __name__ == "__main__":
    main()
