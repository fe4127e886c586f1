"""Multi-scale discriminator (MelGAN / HiFi-GAN): grouped 1-D convs on the waveform at several
average-pooled scales; the first scale uses spectral norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import DiscriminatorOutput, normed


class ScaleDiscriminator(nn.Module):
    def __init__(self, channels: int = 128, max_channels: int = 1024, max_groups: int = 16, norm: str = "weight_norm"):
        super().__init__()
        # HiFi-GAN's layout at channels=128: 1->128 (k15), 128->128 (k41,s2,g4), ->256 (s2,g16),
        # ->512 (s4,g16), ->1024 (s4,g16), ->1024 (s1,g16), ->1024 (k5)
        c = channels
        spec = [  # (out_channels, kernel, stride, groups)
            (c, 15, 1, 1),
            (c, 41, 2, 4),
            (min(2 * c, max_channels), 41, 2, max_groups),
            (min(4 * c, max_channels), 41, 4, max_groups),
            (min(8 * c, max_channels), 41, 4, max_groups),
            (min(8 * c, max_channels), 41, 1, max_groups),
            (min(8 * c, max_channels), 5, 1, 1),
        ]
        layers, c_in = [], 1
        for c_out, k, s, g in spec:
            g = _fit_groups(g, c_in, c_out)
            layers.append(normed(nn.Conv1d(c_in, c_out, k, s, groups=g, padding=(k - 1) // 2), norm))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.conv_post = normed(nn.Conv1d(c_in, 1, 3, 1, padding=1), norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for conv in self.convs:
            x = F.leaky_relu_(conv(x), 0.1)
            feats.append(x)
        x = self.conv_post(x)
        feats.append(x)
        return x.flatten(1, -1), feats


def _fit_groups(groups: int, c_in: int, c_out: int) -> int:
    while groups > 1 and (c_in % groups or c_out % groups):
        groups //= 2
    return groups


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, scales: int = 3, channels: int = 128, max_channels: int = 1024, max_groups: int = 16):
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(channels, max_channels, max_groups, "spectral_norm" if i == 0 else "weight_norm")
            for i in range(scales)
        )
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        out = DiscriminatorOutput()
        for i, d in enumerate(self.discriminators):
            if i > 0:
                x = self.pool(x)
            logit, feats = d(x)
            out.logits.append(logit)
            out.features.append(feats)
        return out
