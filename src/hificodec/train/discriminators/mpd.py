"""Multi-period discriminator (HiFi-GAN): 2-D convs over the waveform folded by each period."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import DiscriminatorOutput, normed, run_each


class PeriodDiscriminator(nn.Module):
    def __init__(
        self,
        period: int,
        channels: Sequence[int] = (32, 128, 512, 1024, 1024),
        kernel_size: int = 5,
        stride: int = 3,
        norm: str = "weight_norm",
        slope: float = 0.1,
    ):
        super().__init__()
        self.period = period
        self.slope = slope
        pad = (kernel_size - 1) // 2
        layers, c_in = [], 1
        for i, c_out in enumerate(channels):
            s = stride if i < len(channels) - 1 else 1  # the last layer keeps the resolution
            layers.append(normed(nn.Conv2d(c_in, c_out, (kernel_size, 1), (s, 1), padding=(pad, 0)), norm))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.conv_post = normed(nn.Conv2d(c_in, 1, (3, 1), 1, padding=(1, 0)), norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), "reflect" if t > n_pad else "constant")
            t += n_pad
        x = x.view(b, c, t // self.period, self.period)
        feats = []
        for conv in self.convs:
            x = F.leaky_relu_(conv(x), self.slope)  # in place: saves a large allocation per layer
            feats.append(x)
        x = self.conv_post(x)
        feats.append(x)
        return x.flatten(1, -1), feats


class MultiPeriodDiscriminator(nn.Module):
    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        channels: Sequence[int] = (32, 128, 512, 1024, 1024),
        kernel_size: int = 5,
        stride: int = 3,
        norm: str = "weight_norm",
    ):
        super().__init__()
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(p, channels, kernel_size, stride, norm) for p in periods
        )

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        return run_each(self.discriminators, x)
