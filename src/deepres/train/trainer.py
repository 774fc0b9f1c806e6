"""The one training loop, for every model and dataset. It receives a run's parts (``parts.py``
builds them from a recipe) and trains them.

A run directory holds: recipe.toml (resolved), env.json, metrics.jsonl (one line per epoch),
last.pt and best.pt (on validation), test.json, and log.txt. Everything random is a function of
the seed and the step, and checkpoints carry the rest of the state, so a resumed run ends with the
same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import random
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.augment import alternating_flips, batch_draws
from ..data.loader import epoch_permutation
from ..errors import DeepresError
from ..evaluate import evaluate
from ..inference import autocast
from ..io import append_line, write_text_atomic
from ..models.registry import create_model
from .checkpoint import load_checkpoint, reported_weights, save_checkpoint
from .distributed import Dist
from .env import environment, with_segment
from .parts import Parts, build_parts
from .progress import Progress, fmt_duration
from .recipe import Recipe
from .rundir import RunDir, RunDirClaim


class NumericalError(DeepresError):
    """A NaN or infinite loss."""


class Interrupted(DeepresError):
    """SIGINT/SIGTERM: a checkpoint was written; the run can be resumed."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class RunResult:
    run_dir: Path
    test: dict | None
    test_best: dict | None
    best_val_error: float | None
    history: list


def default_run_dir(recipe: Recipe) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{recipe.model}-{recipe.name}"


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


class Trainer:
    """The loop: receives a run's parts (``parts.build_parts``) and trains them, writing the run
    directory. ``Trainer.create`` builds the parts from a recipe, or from a run to resume."""

    def __init__(
        self,
        parts: Parts,
        run_dir: Path,
        checkpoint: dict | None = None,
        quiet: bool = False,
        claim: RunDirClaim | None = None,
    ):
        """``checkpoint``: the state to continue from (its recipe is ``parts.recipe``); ``claim``: the
        run directory's lock, released by ``release``."""
        self.parts = parts
        self.recipe, self.dist, self.precision = parts.recipe, parts.dist, parts.precision
        self.bundle, self.train_set, self.val_set, self.test_set, self.test_split = (
            parts.bundle, parts.train_set, parts.val_set, parts.test_set, parts.test_split)  # fmt: skip
        self.data_fingerprint, self.pipeline, self.model = parts.data_fingerprint, parts.pipeline, parts.model
        self.optimizer, self.criterion, self.loader = parts.optimizer, parts.criterion, parts.loader
        self.schedule, self.ema = parts.schedule, parts.ema
        self.device, self.memory_format = parts.device, parts.memory_format
        self.log_lines = list(parts.notes)  # said during set-up, logged once the run directory exists
        self.run_dir, self.ckpt, self.claim = Path(run_dir), checkpoint, claim
        self.quiet = quiet or not self.dist.main

        # Progress state
        self.step = self.epoch = self.epoch_step = 0
        self.history: list[dict] = []
        self.best_val = math.inf
        self.recent_error = 1.0  # smoothed training error, for the paper's warm-up criterion
        self.epoch_stats = torch.zeros(3, dtype=torch.float64)  # images, loss sum, wrong
        self.epoch_seconds = 0.0
        self.skipped_steps = 0
        if checkpoint is not None:
            self._restore(checkpoint)

        self.net: nn.Module = self.model
        if self.dist.world > 1:
            self.net = nn.parallel.DistributedDataParallel(self.model)
        if self.recipe.compile:
            self.net = torch.compile(self.net)
        self.stop_signal: int | None = None

    @classmethod
    def create(
        cls,
        recipe: Recipe | None,
        out: Path | None = None,
        resume: Path | None = None,
        quiet: bool = False,
        machine: dict | None = None,
    ) -> Trainer:
        """A trainer for a new run of ``recipe`` in ``out``, or for the run in ``resume`` (whose recipe
        it reads; ``machine``: new values of its MACHINE_FIELDS, such as threads and precision)."""
        dist = Dist.from_env()
        ckpt = None
        if resume is not None:
            resume = Path(resume)
            last = resume / RunDir.LAST
            if not last.is_file():
                raise DeepresError(f"--resume {resume}: no last.pt in it; expected a run directory")
            ckpt = load_checkpoint(last)
            recipe = Recipe.from_dict(ckpt["recipe"], f"{last} recipe").replace("--resume", **(machine or {}))
            out = resume
        recipe, warmup_note = recipe.resolved().fit_warmup()
        run_dir = Path(out) if out is not None else default_run_dir(recipe)
        run_dir = Path(dist.broadcast_object(str(run_dir)))
        claim = RunDirClaim(run_dir, "--resume" if resume is not None else "--out") if dist.main else None
        try:
            if ckpt is None and (run_dir / RunDir.LAST).exists():
                raise DeepresError(
                    f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another --out"
                )
            parts = build_parts(recipe, dist, ckpt, f"--resume {run_dir}")
            parts.notes[:0] = [warmup_note] if warmup_note else []
            return cls(parts, run_dir, ckpt, quiet, claim)
        except BaseException:
            if claim is not None:
                claim.release(failed=True)
            raise

    def release(self, failed: bool = False) -> None:
        """Let another process use the run directory (and remove it after a failed start that created it)."""
        if self.claim is not None:
            self.claim.release(failed)

    # --- checkpoints ---------------------------------------------------------------------------------------
    def _state(self) -> dict:
        r = self.recipe
        return {
            "model_name": r.model,
            "model_options": dict(r.model_options),
            "in_chans": self.bundle.channels,
            "classes": list(self.bundle.classes),
            "pipeline": self.pipeline.state(),
            "recipe": r.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "epoch_step": self.epoch_step,
            "epoch_stats": self.epoch_stats.clone(),
            "epoch_seconds": self.epoch_seconds,
            "recent_error": self.recent_error,
            "best_val": self.best_val,
            "history": list(self.history),
            "skipped_steps": self.skipped_steps,
            "rng": _rng_state(),
            "world": self.dist.world,
            "data": self.data_fingerprint,
        }

    def _restore(self, c: dict) -> None:
        self.model.load_state_dict(c["model"])
        if self.ema is not None and c.get("ema"):
            self.ema.module.load_state_dict(c["ema"])
            # torch's AveragedModel copies the weights instead of averaging them while its update count
            # is 0, and the count is not in the checkpoint (the averaged net is): without it, every
            # resume restarted the average from the raw weights. Only whether it is 0 matters.
            self.ema.n_averaged.fill_(c["step"])
        self.optimizer.load_state_dict(c["optimizer"])
        self.schedule.load_state_dict(c["schedule"])
        self.step, self.epoch, self.epoch_step = c["step"], c["epoch"], c["epoch_step"]
        self.epoch_stats, self.epoch_seconds = c["epoch_stats"].clone(), c["epoch_seconds"]
        self.recent_error, self.best_val = c["recent_error"], c["best_val"]
        self.history, self.skipped_steps = list(c["history"]), c["skipped_steps"]
        _set_rng_state(c["rng"])

    def _kept(self) -> str:
        if (self.run_dir / RunDir.LAST).is_file():
            return f"{self.run_dir / RunDir.LAST} holds the last good state"
        return "no checkpoint had been written yet"

    def save(self, name: str = RunDir.LAST) -> None:
        # Never a checkpoint of weights that are not numbers: with --nan-policy skip, an lr that
        # diverges can overflow the weights through finite losses, after which every step is skipped.
        if not all(torch.isfinite(t).all() for t in self.model.state_dict().values() if t.is_floating_point()):
            raise NumericalError(
                f"the weights are not finite numbers at step {self.step} (epoch {self.epoch + 1}): the run diverged; "
                f"stopped; {self._kept()}; try a lower --lr"
            )
        if self.dist.main:
            save_checkpoint(self.run_dir / name, self._state())

    def log(self, line: str) -> None:
        if not self.dist.main:
            return
        if not self.quiet:
            self.progress.write(line) if hasattr(self, "progress") else print(line, flush=True)
        append_line(self.run_dir / RunDir.LOG, line)

    # --- the loop ------------------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        if self.stop_signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.stop_signal = signum

    def run(self) -> RunResult:
        r = self.recipe
        total = self.schedule.total
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.run_dir.glob(".*.tmp"):  # left by a writer killed mid-write
                stale.unlink(missing_ok=True)
            write_text_atomic(self.run_dir / RunDir.RECIPE, r.to_toml())
            env_file = self.run_dir / RunDir.ENV
            previous = env_file.read_text() if self.ckpt is not None and env_file.is_file() else None
            env = with_segment(previous, environment(), self.step, self.precision, self.dist.world)
            write_text_atomic(env_file, json.dumps(env, indent=2) + "\n")
            # The metrics as of the checkpoint: lines a killed run wrote after it are dropped.
            write_text_atomic(self.run_dir / RunDir.METRICS, "".join(json.dumps(h) + "\n" for h in self.history))
        self.progress = Progress(total, self.step, enabled=not self.quiet)
        what = "resuming" if self.ckpt is not None else "training"
        self.log(
            f"{what} {r.model} on {self.bundle.describe()} | train {len(self.train_set):,} "
            f"val {len(self.val_set) if self.val_set is not None else 0:,} | {total} steps of "
            f"{r.batch_size} ({self.loader.steps_per_epoch}/epoch) | {self.precision}"
            f"{' channels_last' if r.channels_last else ''} | {self.dist.world} process(es) | "
            f"run dir {self.run_dir}"
        )
        for line in self.log_lines:
            self.log(line)
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._loop(total)
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
            self.progress.close()
        return self._final_test()

    def draws(self, step: int) -> torch.Tensor:
        """Uniform draws for every image of the global batch at ``step``; this rank's rows. With
        alternating flips, the flip column is each image's own (``alternating_flips``)."""
        r = self.recipe
        u = batch_draws(r.seed, step, r.batch_size, self.pipeline.draws_per_image)
        if r.flip == "alternate":
            epoch, s = divmod(step, self.loader.steps_per_epoch)
            n = len(self.train_set)
            images = epoch_permutation(n, r.seed, epoch)[s * r.batch_size : (s + 1) * r.batch_size]
            u[:, self.pipeline.FLIP_DRAW[r.augment]] = alternating_flips(r.seed, epoch, images, n)
        return self.dist.shard.part(u)

    def _loop(self, total: int) -> None:
        r = self.recipe
        last_ckpt = time.perf_counter()
        while self.step < total:
            t_epoch = time.perf_counter() - self.epoch_seconds
            window_t, window_n = time.perf_counter(), 0
            for x, y in self.loader.epoch(self.epoch, self.epoch_step):
                lr = self.schedule.lr(self.step)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                step_stats, stop = self.train_step(x, y, self.step)
                self.step += 1
                self.epoch_step += 1
                if step_stats is not None:
                    n, _, wrong = step_stats.tolist()
                    self.epoch_stats += step_stats
                    self.recent_error = 0.9 * self.recent_error + 0.1 * wrong / n
                    if self.schedule.observe_train_error(self.recent_error):
                        self.log(
                            f"step {self.step}: training error below {100 * r.warmup_until_error:.0f}%, "
                            f"warm-up over, lr {r.warmup_lr} -> {self.schedule.lr(self.step):g}"
                        )
                window_n += len(y) * self.dist.world
                now = time.perf_counter()
                seen, loss_sum, wrong_sum = self.epoch_stats.tolist()
                speed = window_n / max(now - window_t, 1e-9)
                self.progress.update(
                    self.step, self.epoch + 1, loss_sum / max(seen, 1), wrong_sum / max(seen, 1), lr, speed
                )
                if now - window_t > 20:
                    window_t, window_n = now, 0
                if stop:
                    self.epoch_seconds = time.perf_counter() - t_epoch
                    self.save()
                    signum = self.stop_signal or signal.SIGTERM  # another rank's signal stops this one too
                    raise Interrupted(
                        f"{signal.Signals(signum).name} at step {self.step}: checkpoint written; resume with: "
                        f"deepres train --resume {self.run_dir}",
                        128 + signum,
                    )
                if r.checkpoint_every and now - last_ckpt > 60 * r.checkpoint_every:
                    self.epoch_seconds = time.perf_counter() - t_epoch
                    self.save()
                    last_ckpt = now
                if self.step >= total:
                    break
            self.epoch_seconds = time.perf_counter() - t_epoch
            self._end_epoch()

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step: int) -> tuple[torch.Tensor | None, bool]:
        """One SGD step on a batch (this rank's part), augmented with the draws of ``step``. Returns
        the global batch's (images, loss sum, wrong), or None for a skipped step, and whether to stop.

        One all-reduce per step carries everything the ranks must agree on: a non-finite loss
        anywhere, a stop signal anywhere, and the batch statistics (so every rank sees the same
        training error, which the paper's warm-up criterion reads).
        """
        r = self.recipe
        # uint8 to the model's device first: on a GPU the augmentation runs there, on a quarter of
        # the bytes a float batch would take (a no-op on the CPU, and where the images live on the GPU).
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        xb = self.pipeline.train_batch(x, self.draws(step).to(self.device), self.loader.cropped)
        xb = xb.to(self.device, memory_format=self.memory_format)
        self.net.train()
        with autocast(self.precision, self.device):
            logits = self.net(xb)
        loss = self.criterion(logits.float(), y)
        finite = bool(torch.isfinite(loss))
        wrong = (logits.detach().argmax(1) != y).sum().item()
        local = [0.0 if finite else 1.0, float(self.stop_signal is not None), len(y),
                 loss.item() * len(y) if finite else 0.0, wrong]  # fmt: skip
        bad, stop, n, loss_sum, wrong = self.dist.sum(torch.tensor(local, dtype=torch.float64)).tolist()
        if bad:
            if r.nan_policy == "skip":
                self.skipped_steps += 1
                self.log(f"step {self.step + 1}: non-finite loss; step skipped ({self.skipped_steps} so far)")
                self.optimizer.zero_grad(set_to_none=True)
                return None, bool(stop)
            raise NumericalError(
                f"the loss became {loss.item()} at step {self.step + 1} (epoch {self.epoch + 1}); stopped; "
                f"{self._kept()}; try a lower --lr, or --nan-policy skip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return torch.tensor([n, loss_sum, wrong], dtype=torch.float64), bool(stop)

    def _eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def _evaluate(self, split, mode: str = "center", flip: bool = False, model: nn.Module | None = None) -> dict:
        r = self.recipe
        return evaluate(
            model or self._eval_model(),
            split,
            self.pipeline,
            mode,
            flip,
            r.eval_batch_size,
            self.precision,
            r.channels_last,
            self.dist.shard,
            r.workers,
            self.dist.sum,
        )

    def _best_model(self) -> nn.Module | None:
        """The best-on-validation model, if validation picked one distinct from the test set."""
        if self.val_set is None or self.val_set is self.test_set:
            return None
        state = None
        if self.dist.main and (self.run_dir / RunDir.BEST).is_file():
            ckpt = load_checkpoint(self.run_dir / RunDir.BEST)
            state = reported_weights(ckpt)
        state = self.dist.broadcast_object(state)  # other machines may not share the run directory
        if state is None:
            return None
        model = create_model(
            self.recipe.model,
            num_classes=len(self.bundle.classes),
            in_chans=self.bundle.channels,
            **self.recipe.model_options,
        )
        model.load_state_dict(state)
        return model.to(self.device, memory_format=self.memory_format)

    def _end_epoch(self) -> None:
        r = self.recipe
        stats = self.epoch_stats  # already summed over the processes, step by step
        if stats[0].item() == 0:  # --nan-policy skip skipped every step of the epoch
            raise NumericalError(
                f"every step of epoch {self.epoch + 1} had a non-finite loss ({self.skipped_steps} skipped in all): "
                f"the run diverged; stopped; {self._kept()}; try a lower --lr"
            )
        n = stats[0].item()
        record = {
            "epoch": self.epoch + 1,
            "step": self.step,
            "train_loss": stats[1].item() / n,
            "train_error": 100 * stats[2].item() / n,
            "lr": self.schedule.lr(max(self.step - 1, 0)),
            "seconds": round(self.epoch_seconds, 2),
            "precision": self.precision,  # of the segment that ended the epoch
        }
        last_epoch = self.step >= self.schedule.total
        improved = False
        if self.val_set is not None and ((self.epoch + 1) % r.eval_every == 0 or last_epoch):
            val = self._evaluate(self.val_set)
            record.update(val_loss=val["loss"], val_error=val["top1_error"], val_top5_error=val["top5_error"])
            improved = val["top1_error"] < self.best_val
            self.best_val = min(self.best_val, val["top1_error"])
            if self.schedule.observe_val_error(val["top1_error"]):
                self.log(f"epoch {self.epoch + 1}: validation error on a plateau; lr divided by {1 / r.gamma:g}")
        record["images_per_second"] = round(stats[0].item() / max(self.epoch_seconds, 1e-9), 1)
        record["elapsed"] = round(sum(h["seconds"] for h in self.history) + self.epoch_seconds, 2)
        self.history.append(record)
        self.epoch += 1
        self.epoch_step = 0
        self.epoch_stats = torch.zeros(3, dtype=torch.float64)
        self.epoch_seconds = 0.0
        if self.dist.main:
            append_line(self.run_dir / RunDir.METRICS, json.dumps(record))
        self.save()
        if improved and self.dist.main:
            self.save(RunDir.BEST)
        val_txt = f" | val err {record['val_error']:.2f}%" if "val_error" in record else ""
        self.log(
            f"epoch {record['epoch']} step {self.step}/{self.schedule.total} | train loss "
            f"{record['train_loss']:.4f} err {record['train_error']:.2f}%{val_txt} | lr {record['lr']:.4g} | "
            f"{record['seconds']:.0f}s, {record['images_per_second']:.0f} img/s"
        )

    def _final_test(self) -> RunResult:
        r = self.recipe
        test = test_best = None
        if self.test_set is not None:
            test = self._evaluate(self.test_set, r.test_mode, r.test_flip)
            test.update(split=self.test_split, checkpoint=RunDir.LAST, epoch=self.epoch, step=self.step)
            best = self._best_model()
            if best is not None:
                test_best = self._evaluate(self.test_set, r.test_mode, r.test_flip, best)
                test_best.update(split=self.test_split, checkpoint=RunDir.BEST, best_val_error=self.best_val)
            result = {
                "test": test,
                "test_best_on_val": test_best,
                "skipped_steps": self.skipped_steps,
                "skipped_images": self.bundle.skipped,
                "train_seconds": sum(h["seconds"] for h in self.history),
                "data": self.bundle.source,
            }
            if self.dist.main:
                write_text_atomic(self.run_dir / RunDir.TEST, json.dumps(result, indent=2) + "\n")
            msg = (
                f"{self.test_split} error {test['top1_error']:.2f}% (accuracy {100 - test['top1_error']:.2f}%), "
                f"top-5 error {test['top5_error']:.2f}% on {test['n']:,} images [{r.test_mode}"
                f"{' + flip' if r.test_flip else ''}]"
            )
            if test_best is not None:
                msg += f"; best-on-val checkpoint: {test_best['top1_error']:.2f}%"
            self.log(msg)
        total_s = sum(h["seconds"] for h in self.history)
        self.log(f"done in {fmt_duration(total_s)} of training; run directory {self.run_dir}")
        return RunResult(
            self.run_dir, test, test_best, None if math.isinf(self.best_val) else self.best_val, self.history
        )


def train(
    recipe: Recipe | None,
    out: Path | None = None,
    resume: Path | None = None,
    quiet: bool = False,
    machine: dict | None = None,
) -> RunResult:
    trainer = Trainer.create(recipe, out, resume, quiet, machine)
    try:
        return trainer.run()
    finally:
        trainer.release()
        trainer.dist.close()
