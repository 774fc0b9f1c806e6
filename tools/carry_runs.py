"""Carry the run store's unfinished trainings to the next session (the store is not kept between
sessions; DEVELOPERS.md, "Carrying a run to the next session"):

    python tools/carry_runs.py [--store runs]

stops every training that holds a run directory of the store with SIGINT (each checkpoints
mid-epoch and exits), waits for them, then commits each unfinished run's checkpoint and small logs
in a commit of their own (only those paths: whatever else is staged stays staged), and prints the
commands that resume them. A finished run (its test.json written) is left to the report that logs it;
one that no report logs yet (no `results/*/runs/<name>/test.json` says the same) is carried too, with its
test.json, so that the next session reports it from its checkpoint (Fig. 7 measures a net's weights,
and the pretrained weights ship from it) instead of losing the checkpoint with the store.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from deepres.train.checkpoint import load_checkpoint
from deepres.train.rundir import LOCK, RunDir

CARRIED = (RunDir.LAST, RunDir.RECIPE, RunDir.ENV, RunDir.METRICS, RunDir.LOG)  # not best.pt: rewritten
FINISHED = (*CARRIED, RunDir.TEST, RunDir.RESPONSES)


def reported(run: Path, results: Path) -> bool:
    """Whether a report under ``results`` logs the finished ``run``: its test result, word for word."""
    mine = (run / RunDir.TEST).read_bytes()
    return any(p.read_bytes() == mine for p in results.glob(f"*/runs/{run.name}/{RunDir.TEST}"))


def holder(run: Path) -> int | None:
    """The pid of the training that holds ``run``'s lock, or None if none does."""
    if not (run / LOCK).is_file():
        return None
    fd = os.open(run / LOCK, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)  # also drops a lock taken above


def stop(runs: list[Path], timeout: float) -> None:
    """SIGINT each training holding one of ``runs``; wait until every lock is free."""
    held = {run: pid for run in runs if (pid := holder(run)) is not None}
    for run, pid in held.items():
        if pid <= 0:
            raise SystemExit(f"{run}: held by a training whose pid its {LOCK} does not say; stop it first")
        print(f"stopping pid {pid} ({run})")
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while any(holder(run) is not None for run in held):
        if time.monotonic() > deadline:
            still = ", ".join(str(run) for run in held if holder(run) is not None)
            raise SystemExit(f"still training after {timeout:g} s: {still}; nothing committed")
        time.sleep(0.5)


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default="runs", help="the run store (as `deepres reproduce --runs`)")
    ap.add_argument("--results", default="results", help="the reports, whose runs/ say which runs they log")
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for the trainings to checkpoint")
    args = ap.parse_args()
    store = Path(args.store)
    runs = sorted(p.parent for p in store.glob(f"*/*/{RunDir.RECIPE}"))
    stop(runs, args.timeout)
    unfinished = [run for run in runs if (run / RunDir.LAST).is_file() and not RunDir(run).finished]
    unreported = [run for run in runs if (run / RunDir.LAST).is_file() and RunDir(run).finished
                  and not reported(run, Path(args.results))]  # fmt: skip
    if not unfinished + unreported:
        print(f"{store}: no unfinished or unreported run to carry")
        return
    paths = [str(run / name) for run in unfinished for name in CARRIED if (run / name).is_file()]
    paths += [str(run / name) for run in unreported for name in FINISHED if (run / name).is_file()]
    git("add", "-f", "--", *paths)
    where = [f"{run.relative_to(store)} at step {load_checkpoint(run / RunDir.LAST)['step']:,}" for run in unfinished]
    where += [f"{run.relative_to(store)} finished, in no report yet" for run in unreported]
    if subprocess.run(["git", "diff", "--cached", "--quiet", "--", *paths]).returncode == 0:
        print("already committed as they are: " + "; ".join(where))
    else:
        resume = " (resume each unfinished one with deepres train --resume)" if unfinished else ""
        message = f"Carry the runs to the next session: {'; '.join(where)}{resume}"
        git("commit", "-q", "-m", message, "--", *paths)
        print(git("log", "-1", "--format=%h %s").stdout.strip())
    for run in unfinished:
        print(f"resume: deepres train --resume {run}")


if __name__ == "__main__":
    sys.exit(main())
