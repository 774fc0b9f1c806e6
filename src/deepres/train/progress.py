"""Progress: a tqdm bar on a terminal, plain periodic lines otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


def fmt_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    def __init__(self, total_steps: int, start_step: int, enabled: bool = True, interval: float = 30.0):
        self.total, self.enabled, self.interval = total_steps, enabled, interval
        self.tty = enabled and sys.stderr.isatty()
        self.bar = (
            tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, leave=False)
            if self.tty
            else None
        )
        self.t0 = time.perf_counter()
        self.step0 = start_step
        self.last_print = self.t0

    def update(self, step: int, epoch: int, loss: float, error: float, lr: float, img_per_s: float) -> None:
        if not self.enabled:
            return
        done = step - self.step0
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / max(done, 1) * (self.total - step)
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix_str(
                f"ep {epoch} loss {loss:.3f} err {100 * error:.1f}% lr {lr:.3g} {img_per_s:.0f} img/s", refresh=False
            )
            self.bar.refresh()
        elif time.perf_counter() - self.last_print >= self.interval:
            self.last_print = time.perf_counter()
            print(
                f"  step {step}/{self.total} (epoch {epoch}) loss {loss:.4f} train err {100 * error:.2f}% "
                f"lr {lr:.4g} {img_per_s:.0f} img/s ETA {fmt_duration(eta)}",
                flush=True,
            )

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
