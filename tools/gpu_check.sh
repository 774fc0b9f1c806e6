#!/usr/bin/env bash
# The CUDA path of `deepres train`, timed: a few epochs of the budget recipe per variant (precision,
# torch.compile, depth), each run's metrics copied to $OUT, and a table of its speed and error.
# For a machine with an NVIDIA GPU and PyTorch; deepres runs from src/ without an install (it needs
# only numpy, pillow, safetensors and tqdm beside torch). From the repository root:
#
#   bash tools/gpu_check.sh DATA [EPOCHS]
#
# Through this project's device tool: copy the data into an ignored folder of the checkout (the
# JPEG tree, 18 MB, fits what a call carries; the pixel-exact archive, 139 MB, does not), e.g.
# `mkdir -p .data && cp ../shared/data/cifar10-jpeg.tar.xz .data/` with `.data/` in .git/info/exclude,
# then run `bash tools/gpu_check.sh .data/cifar10-jpeg.tar.xz` with carry [".data"]. Speed does not
# depend on which copy of CIFAR-10 it reads; errors compared with the paper's must come from the
# pixel-exact one.
set -euo pipefail
data=${1:?usage: tools/gpu_check.sh DATA [EPOCHS]}
epochs=${2:-3}
out=${OUT:-/tmp/gpu-check}
runs=$(mktemp -d)
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
python3 -c "import torch; from deepres.hardware import describe; print('torch', torch.__version__, '|', describe())"

# name: model precision compile
variants=(
  "resnet20-bf16 resnet20 bf16 false"
  "resnet20-bf16-compiled resnet20 bf16 true"
  "resnet20-fp32 resnet20 fp32 false"
  "resnet110-bf16 resnet110 bf16 false"
  "resnet110-bf16-compiled resnet110 bf16 true"
)
for v in "${variants[@]}"; do
  read -r name model precision compile <<<"$v"
  echo "== $name"
  start=$(date +%s)
  python3 -m deepres.cli train --recipe cifar-quarter --model "$model" --data "$data" --epochs "$epochs" \
    --precision "$precision" --compile "$compile" --out "$runs/$name" 2>&1 | grep -v "^  step" || true
  echo "$name: $(($(date +%s) - start)) s in all, start-up and compilation included"
  cp "$runs/$name/metrics.jsonl" "$out/$name.jsonl" 2>/dev/null || echo "$name: no metrics (the run failed)"
done

python3 - "$out" <<'EOF'
import json, statistics, sys
from pathlib import Path

print(f"{'variant':26} {'img/s (median epoch after the 1st)':>36} {'last val error %':>17}")
for f in sorted(Path(sys.argv[1]).glob("*.jsonl")):
    rows = [json.loads(line) for line in f.read_text().splitlines()]
    speed = statistics.median(r["images_per_second"] for r in rows[1:] or rows)
    print(f"{f.stem:26} {speed:36.0f} {rows[-1].get('val_error', float('nan')):17.2f}")
EOF
