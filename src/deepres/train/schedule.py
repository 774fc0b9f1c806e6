"""Learning-rate schedules, as a function of the step plus the little state some of them need
(plateau, the paper's warm-up until the training error drops), so that resume is exact."""

from __future__ import annotations

import math

from .recipe import Recipe


class LRSchedule:
    def __init__(self, recipe: Recipe, steps_per_epoch: int):
        self.r = recipe
        self.steps_per_epoch = steps_per_epoch
        self.total = recipe.iterations or round(recipe.epochs * steps_per_epoch)
        self.warmup_steps = self.to_steps(recipe.warmup)
        self.milestones = sorted(self.to_steps(m) for m in recipe.milestones)
        # State that is not a function of the step alone:
        self.warming = recipe.warmup_until_error > 0  # the paper's low-lr start for ResNet-110
        self.plateau_scale = 1.0
        self.best_val = math.inf
        self.bad_epochs = 0

    def to_steps(self, amount: float) -> int:
        """Iterations if the recipe counts iterations, else epochs converted to steps."""
        return round(amount if self.r.iterations else amount * self.steps_per_epoch)

    def lr(self, step: int) -> float:
        r = self.r
        if self.warming:
            return r.warmup_lr
        if r.schedule == "onecycle":
            # Linear rise from lr/25 to lr over the warm-up, then linear decay to 0 at the end.
            peak = max(self.warmup_steps, 1)
            if step < peak:
                return r.lr * (0.04 + 0.96 * step / peak)
            return r.lr * max(0.0, (self.total - step) / max(self.total - peak, 1))
        scale = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if r.schedule == "step":
            scale *= r.gamma ** sum(step >= m for m in self.milestones)
        elif r.schedule == "cosine":
            t = (step - self.warmup_steps) / max(self.total - self.warmup_steps, 1)
            scale *= 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))
        elif r.schedule == "plateau":
            scale *= self.plateau_scale
        return r.lr * scale

    def observe_train_error(self, error: float) -> bool:
        """Feed the recent training error (a fraction); True when the warm-up just ended."""
        if self.warming and error < self.r.warmup_until_error:
            self.warming = False
            return True
        return False

    def observe_val_error(self, error: float) -> bool:
        """Feed an epoch's validation error; True when a plateau just divided the lr by 10."""
        if self.r.schedule != "plateau":
            return False
        if error < self.best_val - 1e-9:
            self.best_val, self.bad_epochs = error, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs >= self.r.plateau_patience:
            self.plateau_scale *= self.r.gamma
            self.bad_epochs = 0
            return True
        return False

    def state_dict(self) -> dict:
        return {
            "warming": self.warming,
            "plateau_scale": self.plateau_scale,
            "best_val": self.best_val,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state: dict) -> None:
        self.warming = bool(state["warming"])
        self.plateau_scale = float(state["plateau_scale"])
        self.best_val = float(state["best_val"])
        self.bad_epochs = int(state["bad_epochs"])
