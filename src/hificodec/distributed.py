"""torch.distributed in one place: the process group `torchrun` describes (DDP: gloo on CPU, NCCL on GPU)
and the collectives training and the quantizer's codebook updates use. Outside a process group every
collective is a no-op, so single-process code calls them unconditionally."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if preference == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(preference)


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


# ---- collectives (every rank must call them, in the same order) -------------------------------


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks in place (and return it)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite `t` on every rank with rank `src`'s value (in place)."""
    if is_distributed():
        dist.broadcast(t, src)
    return t


def any_across_ranks(flags: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Element-wise OR of a small 0/1 tensor over all ranks (a copy; `flags` is left as it is)."""
    if ctx.enabled:
        flags = flags.clone()
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return flags


def barrier(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    """Barrier first: destroying the group while a peer still talks caused rare SIGABRTs at exit."""
    if ctx.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def states_match(tensors: list[torch.Tensor], ctx: DistContext) -> bool:
    """True when every rank holds the same values (compared by per-tensor sums and sums of squares).

    Used at checkpoints to catch ranks whose weights or codebooks drifted.
    """
    if not ctx.enabled:
        return True
    stats = torch.stack(
        [torch.stack([t.double().sum(), t.double().square().sum()]) for t in tensors if t.is_floating_point()]
    ).flatten().to(ctx.device)
    high, low = stats.clone(), stats.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return bool(torch.equal(high, low))
