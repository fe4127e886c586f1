"""SEANet encoder/decoder (EnCodec, SoundStream): strided convs with residual units and an optional LSTM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .conv import SConv1d, SConvTranspose1d
from .lstm import SLSTM


def _activation(name: str, inplace: bool = False) -> nn.Module:
    """`inplace` where the input is a fresh intermediate no other branch reads (saves a full-rate
    copy per layer; autograd supports it for ELU and LeakyReLU)."""
    if name == "elu":
        return nn.ELU(alpha=1.0, inplace=inplace)
    if name == "gelu":
        return nn.GELU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2, inplace=inplace)
    raise ValueError(f"unknown activation '{name}'")


class SEANetResnetBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        kernel_size: int,
        dilation: int,
        *,
        compress: int,
        true_skip: bool,
        activation: str,
        conv_kwargs: dict,
    ) -> None:
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(
            _activation(activation),  # not in place: the shortcut reads x too
            SConv1d(dim, hidden, kernel_size, dilation=dilation, **conv_kwargs),
            _activation(activation, inplace=True),
            SConv1d(hidden, dim, 1, **conv_kwargs),
        )
        self.shortcut: nn.Module = nn.Identity() if true_skip else SConv1d(dim, dim, 1, **conv_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if torch.is_grad_enabled():
            return self.shortcut(x) + out
        return out.add_(self.shortcut(x))  # the same sum, without a new full-rate tensor


class _SEANetConfig:
    """Shared hyper-parameters of the SEANet encoder and decoder."""

    def __init__(
        self,
        *,
        channels: int = 1,
        dimension: int = 128,
        n_filters: int = 32,
        n_residual_layers: int = 1,
        ratios: Sequence[int] = (8, 5, 4, 2),
        activation: str = "elu",
        norm: str = "weight_norm",
        kernel_size: int = 7,
        last_kernel_size: int = 7,
        residual_kernel_size: int = 3,
        dilation_base: int = 2,
        causal: bool = False,
        pad_mode: str = "reflect",
        true_skip: bool = False,
        compress: int = 2,
        lstm: int = 2,
        bias: bool = True,
    ) -> None:
        self.channels = channels
        self.dimension = dimension
        self.n_filters = n_filters
        self.n_residual_layers = n_residual_layers
        self.ratios = list(ratios)
        self.activation = activation
        self.kernel_size = kernel_size
        self.last_kernel_size = last_kernel_size
        self.residual_kernel_size = residual_kernel_size
        self.dilation_base = dilation_base
        self.true_skip = true_skip
        self.compress = compress
        self.lstm = lstm
        self.conv_kwargs: dict[str, Any] = dict(causal=causal, norm=norm, pad_mode=pad_mode, bias=bias)

    def resblock(self, dim: int, j: int) -> SEANetResnetBlock:
        return SEANetResnetBlock(
            dim,
            self.residual_kernel_size,
            self.dilation_base**j,
            compress=self.compress,
            true_skip=self.true_skip,
            activation=self.activation,
            conv_kwargs=self.conv_kwargs,
        )


class SEANetEncoder(nn.Module):
    """wav [B, channels, T] -> latent [B, dimension, T / prod(ratios)]. `ratios` in decoder order.

    Inference on CPU runs the convolutions as channels-last conv2d over [B, C, 1, T]: oneDNN's kernels
    for the few-channel full-rate layers are 1.2-1.8x faster in that layout, and padding copies cost
    less (bench/speed.py). The sums are the same up to float rounding, which flips a code only at a
    near-tie between codebook entries (7 of the test split's 381,064 codes; the bundled clip's codes
    are equal, tests/modules/test_seanet.py); `channels_last_inference = False` turns it off.
    """

    channels_last_inference: bool = True

    def __init__(self, **kwargs) -> None:
        super().__init__()
        c = _SEANetConfig(**kwargs)
        self.hop_length = int(torch.tensor(c.ratios).prod())
        mult = 1
        layers: list[nn.Module] = [SConv1d(c.channels, c.n_filters, c.kernel_size, **c.conv_kwargs)]
        for ratio in reversed(c.ratios):
            dim = mult * c.n_filters
            layers += [c.resblock(dim, j) for j in range(c.n_residual_layers)]
            layers += [
                _activation(c.activation, inplace=c.n_residual_layers > 0),  # a residual block's fresh output
                SConv1d(dim, dim * 2, ratio * 2, stride=ratio, **c.conv_kwargs),
            ]
            mult *= 2
        if c.lstm:
            layers.append(SLSTM(mult * c.n_filters, c.lstm))
        layers += [
            _activation(c.activation),
            SConv1d(mult * c.n_filters, c.dimension, c.last_kernel_size, **c.conv_kwargs),
        ]
        self.model = nn.Sequential(*layers)
        self._has_lstm = bool(c.lstm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = self.channels_last_inference and not self._has_lstm and x.device.type == "cpu"
        if torch.is_grad_enabled() or not fast:
            return self.model(x)
        y = self.model(x.unsqueeze(2).contiguous(memory_format=torch.channels_last))
        return y.squeeze(2).contiguous()


class SEANetDecoder(nn.Module):
    """latent [B, dimension, F] -> wav [B, channels, F * prod(ratios)]."""

    def __init__(self, final_activation: str | None = None, **kwargs) -> None:
        super().__init__()
        c = _SEANetConfig(**kwargs)
        self.hop_length = int(torch.tensor(c.ratios).prod())
        causal = bool(c.conv_kwargs["causal"])
        norm = str(c.conv_kwargs["norm"])
        mult = 2 ** len(c.ratios)
        layers: list[nn.Module] = [SConv1d(c.dimension, mult * c.n_filters, c.kernel_size, **c.conv_kwargs)]
        if c.lstm:
            layers.append(SLSTM(mult * c.n_filters, c.lstm))
        for ratio in c.ratios:
            dim = mult * c.n_filters
            layers += [
                _activation(c.activation),
                SConvTranspose1d(dim, dim // 2, ratio * 2, stride=ratio, causal=causal, norm=norm),
            ]
            layers += [c.resblock(dim // 2, j) for j in range(c.n_residual_layers)]
            mult //= 2
        layers += [_activation(c.activation), SConv1d(c.n_filters, c.channels, c.last_kernel_size, **c.conv_kwargs)]
        if final_activation == "tanh":
            layers.append(nn.Tanh())
        elif final_activation is not None:
            raise ValueError(f"unknown final_activation '{final_activation}'")
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)
