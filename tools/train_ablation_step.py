"""Train one run of `deepres reproduce ablation` into the run store now, out of the queue's order:

    taskset -c 1 python tools/train_ablation_step.py 4 --seed 0 --data ../shared/data/cifar10-lossless.tar.xz

Step N (0 = the paper's procedure) with the recipe, store folder and tag the ablation plans for it; a
run there already is resumed (or left as is if finished), so `deepres reproduce ablation` later
reads it as its own. For one core per run, pin it with taskset as here.
"""

import argparse
import sys
from pathlib import Path

from deepres.errors import DeepresError
from deepres.reproduce.ablation import plan, tag
from deepres.reproduce.runs import ensure_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", type=int, help="the step's number in the ablation table")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="as `deepres reproduce ablation --data`")
    ap.add_argument("--budget", default="full", choices=["small", "full"])
    ap.add_argument("--runs", default="runs", help="the run store (as `deepres reproduce --runs`)")
    args = ap.parse_args()
    planned = plan(args.budget, args.data)
    if not 0 <= args.step < len(planned):
        raise SystemExit(f"step {args.step}: expected 0 to {len(planned) - 1}")
    step, budget = planned[args.step]
    try:
        print(ensure_run(Path(args.runs), budget, "resnet20", args.seed, tag=tag(args.step, step, budget)))
    except DeepresError as e:  # e.g. SIGINT: the checkpoint is written; one line, as `deepres train` says it
        print(f"{Path(__file__).name}: error: {e}", file=sys.stderr)
        raise SystemExit(getattr(e, "exit_code", 2)) from None


if __name__ == "__main__":
    main()
