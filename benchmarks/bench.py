"""deepres's speed against a reference measured side by side, in one run, on this machine.

Training (batch 128, CIFAR-10 images with augmentation): deepres's own training step (the Trainer's,
with its in-memory uint8 batches augmented as tensor ops, the machine's fast precision and
channels_last) against the common public recipe: eager fp32, NCHW, a per-image DataLoader transform
pipeline (pad + random crop + flip + to-tensor + normalise, per image, in worker processes).

Inference at 224 (ResNet-18/50, batch 1 and 32): the reference is eager fp32 NCHW; deepres's eval path
(fast precision + channels_last); deepres compiled and frozen (torch.compile with inductor freezing);
and ONNX Runtime fp32 on deepres's ONNX export, as a peer.

Time to accuracy: the training images each committed run (results/*/runs/) needed to reach the
paper's error on its validation split, and the minutes they take at the speed measured here.

Variants alternate in rounds, and the table reports medians, so the machine's drift hits every
variant alike. The fp32 and bf16 peaks come from a large convolution timed in the same run.

Run: ``deepres bench`` (or ``python benchmarks/bench.py``); ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

import deepres
from deepres import create_model
from deepres.analysis.complexity import count
from deepres.data import load_dataset
from deepres.hardware import describe, fast_precision
from deepres.tables import render
from deepres.train.env import cpu_model, git_version
from deepres.train.recipe import load_recipe
from deepres.train.trainer import Trainer

# Targets of issue 5 (medians on the project's reference machine).
TARGETS = {("train", "resnet20"): 2.0, ("train", "resnet56"): 2.0, ("infer", "resnet50", 32): 3.5}
ORT_TARGET = {("infer", "resnet50", 32): 1.6}


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def alternate(variants: dict[str, Callable[[], int]], rounds: int) -> dict[str, float]:
    """Median items/s of each variant; each call returns how many items it processed."""
    speeds: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm-up: caches, allocator, worker start, compilation
        fn()
    for _ in range(rounds):
        for name, fn in variants.items():
            t = time.perf_counter()
            n = fn()
            speeds[name].append(n / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in speeds.items()}


# --- peaks -------------------------------------------------------------------------------------------
def conv_peak(precision: str, timings: int = 12) -> float:
    """GFLOP/s (2 x multiply-adds) of a large 3x3 convolution, channels_last, in ``precision``: the
    best of ``timings``."""
    x = torch.randn(8, 256, 56, 56).contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3).contiguous(memory_format=torch.channels_last)
    if precision == "bf16":
        x, w = x.bfloat16(), w.bfloat16()
    flops = 2 * 8 * 256 * 256 * 9 * 56 * 56
    with torch.no_grad():
        F.conv2d(x, w, padding=1)
        # The best of many timings: one that shares the cores with another process comes out at
        # half the machine's peak or less.
        best = min(timed(lambda: F.conv2d(x, w, padding=1)) for _ in range(timings))
    return flops / best / 1e9


def share_of_peak(gflops: float, precision: str) -> float | str:
    """Percent of the measured peak; above 100 the peak itself was timed low (the machine was busy
    while it was measured), and the table says so instead of printing an impossible share."""
    pct = 100 * gflops / PEAK[precision]
    return round(pct, 1) if pct <= 100 else f"over 100 (peak timed low: {PEAK[precision]:.0f} GFLOP/s)"


# --- training ----------------------------------------------------------------------------------------
class PerImageCifar(torch.utils.data.Dataset):
    """The common public CIFAR pipeline, one PIL image at a time (as torchvision's RandomCrop(32,
    padding=4), RandomHorizontalFlip, ToTensor and Normalize do it)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels
        self.mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)
        self.std = torch.tensor([0.2470, 0.2435, 0.2616]).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        im = ImageOps.expand(Image.fromarray(self.images[i]), border=4, fill=0)
        x0, y0 = np.random.randint(0, 9, size=2)
        im = im.crop((x0, y0, x0 + 32, y0 + 32))
        if np.random.rand() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        t = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
        return (t - self.mean) / self.std, int(self.labels[i])


def reference_trainer(name: str, images: np.ndarray, labels: np.ndarray, workers: int) -> Callable[[int], int]:
    model = create_model(name)  # the same architecture; eager fp32, NCHW
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loader = torch.utils.data.DataLoader(
        PerImageCifar(images, labels), batch_size=128, shuffle=True, drop_last=True, num_workers=workers,
        persistent_workers=workers > 0,
    )  # fmt: skip
    batches = iter(())

    def steps(n: int) -> int:
        nonlocal batches
        model.train()
        for _ in range(n):
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                x, y = next(batches)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return 128 * n

    return steps


def deepres_trainer(name: str, run_dir: Path, compile: bool = False) -> Callable[[int], int]:
    """deepres's own training step on the embedded CIFAR-10 sample, with the Trainer's defaults."""
    recipe = load_recipe("cifar-fast").replace(model=name, data="cifar10-sample", val_split=0, epochs=1)
    recipe = recipe.replace(compile=compile)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = Trainer.create(recipe, out=run_dir, quiet=True)
    state = {"step": 0, "batches": iter(())}

    def steps(n: int) -> int:
        for _ in range(n):
            try:
                x, y = next(state["batches"])
            except StopIteration:
                state["batches"] = iter(trainer.loader.epoch(state["step"] // trainer.loader.steps_per_epoch))
                x, y = next(state["batches"])
            trainer.train_step(x, y, state["step"])  # the very step `deepres train` runs
            state["step"] += 1
        return 128 * n

    return steps


def bench_training(names: list[str], rounds: int, steps: int, workers: int, compile: bool) -> list[dict]:
    sample = load_dataset("cifar10-sample").splits["train"]
    rows = []
    for name in names:
        k = max(1, steps * 20 // int(name.removeprefix("resnet")))  # fewer steps for deeper nets
        with tempfile.TemporaryDirectory() as tmp:
            ref = reference_trainer(name, sample.images, sample.labels, workers)
            steppers = {"reference": ref, "deepres": deepres_trainer(name, Path(tmp) / "run")}
            if compile:
                steppers["deepres compiled"] = deepres_trainer(name, Path(tmp) / "run-compiled", compile=True)
            speed = alternate({key: functools.partial(fn, k) for key, fn in steppers.items()}, rounds)
        _, _, macs = count(create_model(name), 32)
        rows.append(row("train", name, 128, speed, macs * 3))  # forward + backward ~ 3x the forward
    return rows


def time_to_accuracy(train_rows: list[dict], results: Path) -> list[dict]:
    """For every committed run of a net just timed (its logs under results/*/runs/), the training
    images it needed to reach the paper's test error on its validation split, and what they take on
    this machine at the training speed just measured: time to accuracy from the logs, not a new run."""
    from deepres.reproduce.cifar import PAPER
    from deepres.reproduce.runs import images_to_error, val_errors
    from deepres.train.rundir import RunDir

    speed = {r["model"]: max(v for k, v in r.items() if k.startswith("deepres") and k.endswith("img/s"))
             for r in train_rows}  # fmt: skip
    rows, seen = [], set()
    for run in sorted(results.glob("*/runs/*")):
        net = run.name.split("-")[0]
        if net not in speed or net not in PAPER or not RunDir(run).finished:
            continue
        val = val_errors(run)
        if not val:  # trained on all the training images: no validation curve to read the target from
            continue
        recipe, target = RunDir(run).recipe(), PAPER[net]
        # Reports share runs: each once. One name is not one run (`resnet20-s0` of two recipes).
        if (same := (run.name, recipe["name"], Path(recipe["data"]).name)) in seen:
            continue
        seen.add(same)
        reached = images_to_error(run, target)
        row = {"run": str(run.relative_to(results.parent)), "recipe": recipe["name"],
               "data": Path(recipe["data"]).name, "target val error %": target}  # fmt: skip
        if reached is None:
            row.update({"images to target (M)": f"not reached (best {min(val):.2f} %)", "minutes here": "-"})
        else:
            images, _ = reached
            row.update({"images to target (M)": round(images / 1e6, 2),
                        "minutes here": round(images / speed[net] / 60, 1)})  # fmt: skip
        rows.append(row)
    return rows


# --- inference ---------------------------------------------------------------------------------------
def bench_inference(names: list[str], batches: list[int], rounds: int, quick: bool) -> list[dict]:
    from deepres.export import onnx_bytes
    from deepres.inference import inference_fn

    try:
        import onnxruntime as ort
    except ImportError:  # the plain install: the peer is an extra
        ort = None
        print("onnxruntime is not installed: its column is left out (pip install 'deepres[export]' adds it)")

    precision = fast_precision()
    rows = []
    for name in names:
        ref = create_model(name).eval()
        fast = create_model(name).eval().to(memory_format=torch.channels_last)
        fast.load_state_dict(ref.state_dict())
        session = None
        if ort is not None:
            with torch.no_grad():
                session = ort.InferenceSession(
                    onnx_bytes(ref, torch.zeros(1, 3, 224, 224)), providers=["CPUExecutionProvider"]
                )
        compiled = None if quick else inference_fn(fast, precision, compile=True)  # `deepres eval --compile`
        _, _, macs = count(ref, 224)
        for b in batches:
            x = torch.randn(b, 3, 224, 224)
            xc, xn = x.contiguous(memory_format=torch.channels_last), x.numpy()
            reps = max(1, 8 // b)  # at batch 1, several calls per timing
            variants = {
                "reference": functools.partial(forward_many, ref, x, reps),
                "deepres": functools.partial(forward_many, inference_fn(fast, precision), xc, reps),  # eval, predict
            }
            if session is not None:
                variants["onnxruntime"] = functools.partial(forward_many, ort_runner(session), xn, reps)
            if compiled is not None:
                variants["deepres compiled"] = functools.partial(forward_many, compiled, xc, reps)
            rows.append(row("infer", name, b, alternate(variants, rounds), macs))
    return rows


def forward_many(fn: Callable, x, reps: int) -> int:
    with torch.no_grad():
        for _ in range(reps):
            fn(x)
    return len(x) * reps


def ort_runner(session) -> Callable:
    return lambda x: session.run(None, {"input": x})


# --- report ------------------------------------------------------------------------------------------
PEAK: dict[str, float] = {}


def row(task: str, name: str, batch: int, speed: dict[str, float], macs_per_image: int) -> dict:
    ref = speed["reference"]
    out = {"task": task, "model": name, "batch": batch, "reference img/s": round(ref, 1)}
    for k, v in speed.items():
        if k != "reference":
            out[f"{k} img/s"] = round(v, 1)
            out[f"{k} x ref"] = round(v / ref, 2)
    best = max(v for k, v in speed.items() if k.startswith("deepres"))
    out["deepres % of peak"] = share_of_peak(best * 2 * macs_per_image / 1e9, fast_precision())
    if "onnxruntime" in speed:
        out["deepres x onnxruntime"] = round(best / speed["onnxruntime"], 2)
    key = (task, name, batch) if task == "infer" else (task, name)
    target = TARGETS.get(key)
    if target is not None:
        vs_ort = key in ORT_TARGET and "onnxruntime" in speed  # the peer is measured only where installed
        met = best / ref >= target and (not vs_ort or best / speed["onnxruntime"] >= ORT_TARGET[key])
        out["target"] = f">= {target}x ref" + (f", >= {ORT_TARGET[key]}x ort" if vs_ort else "")
        out["met"] = "yes" if met else "no"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="deepres bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: ResNet-20 and ResNet-18 only, one round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=6, help="ResNet-20 training steps per round (deeper: fewer)")
    ap.add_argument("--workers", type=int, default=2, help="the reference's DataLoader worker processes")
    ap.add_argument("--format", choices=["table", "markdown", "csv", "json"], default="table")
    args = ap.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    torch.manual_seed(0)
    np.random.seed(0)

    timings = 2 if args.quick else 12  # a smoke run's peak may read low; the share of it says so
    PEAK["fp32"], PEAK["bf16"] = conv_peak("fp32", timings), conv_peak("bf16", timings)
    print(f"deepres {deepres.__version__}, torch {torch.__version__}, Python {platform.python_version()}")
    print(f"machine: {cpu_model()} ({platform.machine()}, {os.cpu_count()} cores), {describe()}")
    print(f"deepres's fast precision here: {fast_precision()}; git {git_version().get('commit', '?')[:10]}")
    print(f"conv peak (3x3, 256 ch, 56x56): fp32 {PEAK['fp32']:.0f} GFLOP/s, bf16 {PEAK['bf16']:.0f} GFLOP/s")
    sys.stdout.flush()
    train = ["resnet20"] if args.quick else ["resnet20", "resnet56", "resnet110"]
    rows = bench_training(train, rounds, 1 if args.quick else args.steps, args.workers, compile=not args.quick)
    print(render(rows, args.format))
    results = Path(__file__).resolve().parent.parent / "results"
    reach = time_to_accuracy(rows, results)
    print(f"time to the paper's error, from the committed run logs in {results} at the speed measured above:")
    print(render(reach, args.format) if reach else "no committed run of these nets")
    sys.stdout.flush()
    infer = ["resnet18"] if args.quick else ["resnet18", "resnet50"]
    rows = bench_inference(infer, [1] if args.quick else [1, 32], rounds, args.quick)
    print(render(rows, args.format))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
