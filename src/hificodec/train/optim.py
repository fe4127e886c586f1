"""Optimisers and learning-rate schedules built from a recipe.

The schedule is a pure function of (step, epoch), both saved in checkpoints, so resuming restores
it exactly without a separate scheduler state.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .recipe import OptimizerSettings, ScheduleSettings


def build_optimizer(params: Iterable[torch.nn.Parameter], settings: OptimizerSettings) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if settings.name == "adamw" else torch.optim.Adam
    return cls(
        [p for p in params if p.requires_grad], lr=settings.lr, betas=(settings.betas[0], settings.betas[1]),
        weight_decay=settings.weight_decay,
    )


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
