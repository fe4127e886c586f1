"""Padding-aware 1-D convolutions that work causal and non-causal.

`SConv1d` pads so that a strided conv over T samples yields exactly ceil(T / stride) frames, and
`SConvTranspose1d` trims so that F frames yield exactly F * stride samples. Causal variants put all
padding on the left (output at t never sees input after t).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..dsp.padding import pad1d
from .norm import InferenceWeight, apply_norm


def extra_padding_for_conv1d(length: int, kernel_size: int, stride: int, padding_total: int) -> int:
    """Right padding needed so the last window is complete (no input sample is dropped)."""
    n_frames = (length - kernel_size + padding_total) / stride + 1
    ideal_length = (math.ceil(n_frames) - 1) * stride + (kernel_size - padding_total)
    return ideal_length - length


class SConv1d(nn.Module):
    """Conv1d with automatic 'same'-style padding (causal or centred) and optional weight norm."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        causal: bool = False,
        norm: str = "weight_norm",
        pad_mode: str = "reflect",
    ) -> None:
        super().__init__()
        self.conv = apply_norm(
            nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation, groups=groups, bias=bias),
            norm,
        )
        self.causal = causal
        self.pad_mode = pad_mode
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self._inference_weight = InferenceWeight()

    @property
    def padding_total(self) -> int:
        return (self.kernel_size - 1) * self.dilation - (self.stride - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k_eff = (self.kernel_size - 1) * self.dilation + 1
        pad = self.padding_total
        extra = extra_padding_for_conv1d(x.shape[-1], k_eff, self.stride, pad)
        if self.causal:
            x = pad1d(x, pad, extra, self.pad_mode)
        else:
            right = pad // 2
            x = pad1d(x, pad - right, right + extra, self.pad_mode)
        if torch.is_grad_enabled():
            return self.conv(x)
        conv: nn.Conv1d = self.conv  # type: ignore[assignment]
        weight = self._inference_weight.get(conv)
        return F.conv1d(x, weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class SConvTranspose1d(nn.Module):
    """ConvTranspose1d trimmed to exactly `stride` samples per input frame."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        causal: bool = False,
        norm: str = "weight_norm",
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.convtr = apply_norm(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride, bias=bias), norm)
        self.causal = causal
        self.padding_total = kernel_size - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convtr(x)
        pad = self.padding_total
        # Causal: trim everything on the right, so the output at t only depends on frames <= t.
        right = pad if self.causal else pad // 2
        left = pad - right
        return y[..., left : y.shape[-1] - right]
