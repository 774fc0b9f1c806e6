"""The environment of a run: versions, CPU, threads, code version. Stored as env.json: the
environment the run started in, and one entry per segment (start and every resume), since a long run
may be resumed on another machine, with another precision or another version of the code."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from ..hardware import usable_cores


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_version() -> dict:
    """Commit of the deepres source tree (and whether it had uncommitted changes), if it is a checkout."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            != ""
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": dirty} if commit else {}


def environment() -> dict:
    from .. import __version__

    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "deepres": __version__,
        "git": git_version(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # AVX2, AVX512, ...: what runs fast
        "cores": usable_cores(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "hostname": platform.node(),
        "allocator": "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "default",
    }


SEGMENT_KEYS = ("time", "cpu", "cpu_capability", "cores", "threads", "hostname", "git", "torch")


def with_segment(previous: str | None, env: dict, step: int, precision: str, world: int) -> dict:
    """env.json's content after a segment starts at ``step``: ``previous`` (the file's text from the
    earlier segments, None at the start) kept, with this segment's machine and precision appended."""
    segment = {"step": step, "precision": precision, "world_size": world, **{k: env[k] for k in SEGMENT_KEYS}}
    try:
        base = json.loads(previous) if previous else None
    except json.JSONDecodeError:
        base = None  # an unreadable file from a run killed long ago: start the record again
    if not isinstance(base, dict):
        base = {**env, "world_size": world, "segments": []}
    base.setdefault("segments", [])  # env.json of a run started before segments were recorded
    base["segments"].append(segment)
    return base
