"""torchrun integration: process group from the environment, shards, reductions, and a
SyncBatchNorm that also works on CPU (PyTorch's own supports only accelerators)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..data.loader import Shard


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @classmethod
    def from_env(cls) -> Dist:
        """Read torchrun's variables; join the process group when there is more than one process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        d = cls(
            int(os.environ.get("RANK", "0")),
            world,
            int(os.environ.get("LOCAL_RANK", "0")),
            int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
        )
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return d

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world)

    @property
    def device(self) -> torch.device:
        return torch.device(f"cuda:{self.local_rank}") if torch.cuda.is_available() else torch.device("cpu")

    def sum(self, t: Tensor) -> Tensor:
        if self.world > 1:
            t = t.clone()
            dist.all_reduce(t)
        return t

    def broadcast_object(self, obj):
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes, differentiable: every rank's input feeds every rank's output."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose training statistics cover the whole global batch, over any backend (gloo too).

    Two differentiable all-reduces per layer: the sum (with the count), then the sum of squared
    deviations from the global mean. Two passes, like BatchNorm's own, rather than E[x^2] - E[x]^2,
    whose cancellation in fp32 costs percent-level gradient errors in deep layers.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        xf = x if x.dtype == torch.float64 else x.float()
        c = self.num_features
        count = torch.full((1,), xf.numel() / c, dtype=xf.dtype, device=xf.device)
        total = _AllReduceSum.apply(torch.cat([xf.sum((0, 2, 3)), count]))
        n = total[c]
        mean = (total[:c] / n).view(1, c, 1, 1)
        centered = xf - mean
        var = _AllReduceSum.apply((centered * centered).sum((0, 2, 3))) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean.view(c).detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
        y = centered * torch.rsqrt(var.view(1, c, 1, 1) + self.eps)
        return (y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)).to(x.dtype)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Swap every BatchNorm2d for the sync version, keeping parameters and statistics (and names)."""
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, CpuSyncBatchNorm):
        new = CpuSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        new.load_state_dict(module.state_dict())
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_sync_batchnorm(child))
    return module
