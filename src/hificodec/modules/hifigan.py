"""HiFi-GAN generator with multi-receptive-field residual blocks, and its mirror-image encoder
(the HiFi-Codec architecture of AcademiCodec)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .conv import SConv1d, SConvTranspose1d

LRELU_SLOPE = 0.1


class ResBlock1(nn.Module):
    """HiFi-GAN ResBlock1: pairs of (dilated conv, conv) with residual connections."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int], causal: bool = False) -> None:
        super().__init__()
        kw: dict[str, Any] = dict(causal=causal, pad_mode="zeros")
        self.convs1 = nn.ModuleList(SConv1d(channels, channels, kernel_size, dilation=d, **kw) for d in dilations)
        self.convs2 = nn.ModuleList(SConv1d(channels, channels, kernel_size, **kw) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = x + xt
        return x


class MultiReceptiveField(nn.Module):
    """Average of ResBlock1s with different kernel sizes, optionally each followed by GroupNorm."""

    def __init__(
        self,
        channels: int,
        kernel_sizes: Sequence[int],
        dilation_sizes: Sequence[Sequence[int]],
        norm_groups: int = 0,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock1(channels, k, d, causal=causal) for k, d in zip(kernel_sizes, dilation_sizes)
        )
        self.norms = nn.ModuleList(
            nn.GroupNorm(norm_groups, channels) if norm_groups else nn.Identity() for _ in self.blocks
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = sum(norm(block(x)) for block, norm in zip(self.blocks, self.norms))
        return out / len(self.blocks)  # type: ignore[operator]


class HiFiGANGenerator(nn.Module):
    """latent [B, in_channels, F] -> wav [B, 1, F * prod(upsample_rates)]."""

    def __init__(
        self,
        *,
        in_channels: int,
        upsample_rates: Sequence[int] = (8, 5, 4, 2),
        upsample_kernel_sizes: Sequence[int] = (16, 11, 8, 4),
        upsample_initial_channel: int = 512,
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.hop_length = int(torch.tensor(list(upsample_rates)).prod())
        self.conv_pre = SConv1d(in_channels, upsample_initial_channel, 7, causal=causal, pad_mode="zeros")
        self.ups = nn.ModuleList()
        self.mrfs = nn.ModuleList()
        ch = upsample_initial_channel
        for u, k in zip(upsample_rates, upsample_kernel_sizes):
            self.ups.append(SConvTranspose1d(ch, ch // 2, k, stride=u, causal=causal))
            ch //= 2
            self.mrfs.append(MultiReceptiveField(ch, resblock_kernel_sizes, resblock_dilation_sizes, causal=causal))
        self.conv_post = SConv1d(ch, 1, 7, causal=causal, pad_mode="zeros")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(z)
        for up, mrf in zip(self.ups, self.mrfs):
            x = mrf(up(F.leaky_relu(x, LRELU_SLOPE)))
        # HiFi-GAN uses the default LeakyReLU slope (0.01) before the output conv.
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


class HiFiGANEncoder(nn.Module):
    """Mirror image of the generator: wav [B, 1, T] -> latent [B, out_channels, T / prod(strides)].

    `channels[0]` is the width after the first conv; stage i maps channels[i] -> channels[i+1] with
    stride strides[i] (AcademiCodec: 32 -> 64 -> 128 -> 256 -> 512 with strides 2, 4, 5, 8).
    """

    def __init__(
        self,
        *,
        out_channels: int,
        channels: Sequence[int] = (32, 64, 128, 256, 512),
        strides: Sequence[int] = (2, 4, 5, 8),
        kernel_sizes: Sequence[int] = (4, 8, 11, 16),
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        norm_group_size: int = 16,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) != len(strides) + 1 or len(kernel_sizes) != len(strides):
            raise ValueError("HiFiGANEncoder: need len(channels) == len(strides) + 1 == len(kernel_sizes) + 1")
        self.hop_length = int(torch.tensor(list(strides)).prod())
        self.conv_pre = SConv1d(1, channels[0], 7, causal=causal, pad_mode="zeros")
        self.downs = nn.ModuleList()
        self.mrfs = nn.ModuleList()
        for c_in, c_out, s, k in zip(channels[:-1], channels[1:], strides, kernel_sizes):
            self.downs.append(SConv1d(c_in, c_out, k, stride=s, causal=causal, pad_mode="zeros"))
            groups = max(1, c_out // norm_group_size) if norm_group_size else 0
            self.mrfs.append(
                MultiReceptiveField(c_out, resblock_kernel_sizes, resblock_dilation_sizes, groups, causal=causal)
            )
        self.conv_post = SConv1d(channels[-1], out_channels, 3, causal=causal, pad_mode="zeros")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for down, mrf in zip(self.downs, self.mrfs):
            x = mrf(down(F.leaky_relu(x, LRELU_SLOPE)))
        return self.conv_post(F.leaky_relu(x))
