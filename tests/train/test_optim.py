import math

import torch

from hificodec.train.optim import build_optimizer, lr_factor, set_lr
from hificodec.train.recipe import OptimizerSettings, ScheduleSettings


def test_warmup_then_exponential_decay_per_step_or_epoch():
    per_step = ScheduleSettings(gamma=0.5, per="step", warmup_steps=4)
    assert [lr_factor(per_step, s, 0) for s in range(3)] == [0.25 * 1, 0.5 * 0.5, 0.75 * 0.25]
    per_epoch = ScheduleSettings(gamma=0.98, per="epoch")
    assert lr_factor(per_epoch, 12345, 0) == 1.0
    assert math.isclose(lr_factor(per_epoch, 0, 3), 0.98**3)


def test_optimizer_kinds_and_lr_setting():
    p = torch.nn.Parameter(torch.zeros(3))
    frozen = torch.nn.Parameter(torch.zeros(3), requires_grad=False)
    adamw = build_optimizer([p, frozen], OptimizerSettings(name="adamw", lr=1e-3, betas=(0.8, 0.99), weight_decay=0.1))
    assert isinstance(adamw, torch.optim.AdamW) and len(adamw.param_groups[0]["params"]) == 1
    assert adamw.param_groups[0]["betas"] == (0.8, 0.99)
    assert set_lr(adamw, 1e-3, 0.5) == 5e-4 and adamw.param_groups[0]["lr"] == 5e-4
    assert isinstance(build_optimizer([p], OptimizerSettings()), torch.optim.Adam)
