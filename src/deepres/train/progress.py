"""Progress: a tqdm bar on a terminal, plain periodic lines otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import time
from collections import deque

from tqdm import tqdm


def fmt_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Steps, loss, error, lr, speed and an ETA from the recent pace (the last ``window`` seconds),
    so a pause or a slow start does not skew it for the rest of the run."""

    def __init__(
        self, total_steps: int, start_step: int, enabled: bool = True, interval: float = 30.0, window: float = 300.0
    ):
        self.total, self.enabled, self.interval, self.window = total_steps, enabled, interval, window
        self.tty = enabled and sys.stderr.isatty()
        self.bar = (
            tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, leave=False)
            if self.tty
            else None
        )
        self.last_print = time.perf_counter()
        self.marks: deque[tuple[float, int]] = deque([(self.last_print, start_step)])

    def eta(self, step: int, now: float) -> float:
        """Seconds left at the pace of the last ``window`` seconds (the marks span at least that)."""
        self.marks.append((now, step))
        while len(self.marks) > 2 and now - self.marks[1][0] >= self.window:
            self.marks.popleft()
        t_old, step_old = self.marks[0]
        return (now - t_old) / max(step - step_old, 1) * (self.total - step)

    def update(self, step: int, epoch: int, loss: float, error: float, lr: float, img_per_s: float) -> None:
        if not self.enabled:
            return
        eta = self.eta(step, time.perf_counter())
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
