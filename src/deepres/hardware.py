"""What the machine at hand does fast. bf16 autocast pays only where the hardware has bf16 arithmetic
(AVX-512 BF16 or AMX on x86 CPUs, any recent GPU); elsewhere PyTorch emulates it and a bf16 step runs
several times *slower* than fp32, so "auto" precision picks per machine."""

from __future__ import annotations

import functools
import os


@functools.cache
def cpu_has_fast_bf16() -> bool:
    import torch  # here, not at the top: the CLI imports this module before it needs torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def usable_cores() -> int:
    """The cores this process may run on: fewer than the machine's under `taskset` or a cpuset."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def fast_precision(device="cpu") -> str:
    """The precision the fast path uses on ``device``: bf16 where it is native, else fp32."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def default_device() -> str:
    """Where a job runs unless told otherwise: the GPU where there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(precision: str, device="cpu") -> str:
    return fast_precision(device) if precision == "auto" else precision


def describe() -> str:
    """One line for logs and benchmark tables."""
    import torch

    cap = torch.backends.cpu.get_cpu_capability()
    cpu = f"CPU {cap}, bf16 {'native' if cpu_has_fast_bf16() else 'emulated (slow)'}, {torch.get_num_threads()} threads"
    if not torch.cuda.is_available():
        return cpu
    bf16 = "native" if fast_precision("cuda") == "bf16" else "no"
    return f"GPU {torch.cuda.get_device_name()} x{torch.cuda.device_count()}, bf16 {bf16}; {cpu}"
