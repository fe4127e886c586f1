"""Optimisers and learning-rate schedules built from a recipe.

The schedule is a pure function of (step, epoch), both saved in checkpoints, so resuming restores
it exactly without a separate scheduler state.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .recipe import OptimizerSettings, ScheduleSettings

FUSED_DEVICES = ("cuda", "cpu")  # where torch's fused Adam kernels (and their `found_inf`) exist


def build_optimizer(params: Iterable[torch.nn.Parameter], settings: OptimizerSettings) -> torch.optim.Optimizer:
    """Adam or AdamW; fused (one kernel for all parameters) where the parameters' device has it."""
    cls = torch.optim.AdamW if settings.name == "adamw" else torch.optim.Adam
    trainable = [p for p in params if p.requires_grad]
    fused = bool(trainable) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in trainable)
    return cls(
        trainable, lr=settings.lr, betas=(settings.betas[0], settings.betas[1]),
        weight_decay=settings.weight_decay, fused=fused or None,
    )


def guarded_step(optimizer: torch.optim.Optimizer, finite: torch.Tensor) -> None:
    """`optimizer.step()` unless `finite` (a bool tensor) is False, without waiting for the device.

    Fused Adam kernels take a `found_inf` flag (what `torch.amp.GradScaler` uses) and leave weights,
    moments and step counts untouched where it is set; other optimizers read the flag on the host.
    """
    if optimizer.defaults.get("fused"):
        optimizer.found_inf = (~finite).float().reshape(())  # type: ignore[attr-defined]
        optimizer.grad_scale = None  # type: ignore[attr-defined]
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf, optimizer.grad_scale  # type: ignore[attr-defined]
    elif bool(finite):
        optimizer.step()


def lr_factor(schedule: ScheduleSettings, step: int, epoch: int) -> float:
    """Linear warm-up over `warmup_steps`, then exponential decay per epoch or per step."""
    warm = min(1.0, (step + 1) / schedule.warmup_steps) if schedule.warmup_steps > 0 else 1.0
    t = epoch if schedule.per == "epoch" else step
    return warm * schedule.gamma**t


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    lr = base_lr * factor
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
