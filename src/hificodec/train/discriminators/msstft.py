"""Multi-scale STFT discriminator (Encodec): 2-D convs over complex spectrograms at several resolutions.

CPU cost is dominated by the 2-D convolutions, so the layout avoids extra work: one `torch.stft`
per scale over the whole (real + fake) batch, `view_as_real` + a permute (no real/imag copies or
concatenations), and an input normalisation folded into the STFT (`normalized=True`). Channel
count and number of scales are the knobs that trade quality for speed (see docs/training.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...dsp.stft import hann_window
from .common import DiscriminatorOutput, normed, run_each


class STFTDiscriminator(nn.Module):
    def __init__(
        self,
        n_fft: int,
        hop_length: int,
        win_length: int,
        filters: int = 32,
        max_filters: int = 1024,
        filters_scale: int = 1,
        kernel_size: tuple[int, int] = (3, 9),
        dilations: Sequence[int] = (1, 2, 4),
        stride: tuple[int, int] = (1, 2),
        norm: str = "weight_norm",
        slope: float = 0.2,
    ):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.slope = slope
        kt, kf = kernel_size
        layers = [normed(nn.Conv2d(2, filters, kernel_size, padding=(kt // 2, kf // 2)), norm)]
        c_in = min(filters_scale * filters, max_filters)
        for i, d in enumerate(dilations):
            c_out = min(filters_scale ** (i + 1) * filters, max_filters)
            # time runs along dim 2 (dilated), frequency along dim 3 (strided)
            conv = nn.Conv2d(
                c_in, c_out, kernel_size, stride=stride, dilation=(d, 1), padding=(d * (kt - 1) // 2, kf // 2)
            )
            layers.append(normed(conv, norm))
            c_in = c_out
        c_out = min(filters_scale ** (len(dilations) + 1) * filters, max_filters)
        layers.append(normed(nn.Conv2d(c_in, c_out, (kt, kt), padding=(kt // 2, kt // 2)), norm))
        self.convs = nn.ModuleList(layers)
        self.conv_post = normed(nn.Conv2d(c_out, 1, (kt, kt), padding=(kt // 2, kt // 2)), norm)

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, T] -> [B, 2 (real, imag), frames, freqs] as a view of one complex STFT."""
        window = hann_window(self.win_length, x.device).to(x.dtype)
        spec = torch.stft(
            x.reshape(-1, x.shape[-1]),
            self.n_fft,
            self.hop_length,
            self.win_length,
            window=window,
            center=False,
            normalized=True,
            return_complex=True,
        )
        return torch.view_as_real(spec).permute(0, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z = self.spectrogram(x.float())
        feats = []
        for conv in self.convs:
            z = F.leaky_relu_(conv(z), self.slope)  # in place: a fresh 10-60 MB tensor costs page faults
            feats.append(z)
        z = self.conv_post(z)
        return z.flatten(1, -1), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    def __init__(
        self,
        n_ffts: Sequence[int] = (1024, 2048, 512, 256, 128),
        hop_lengths: Sequence[int] | None = None,
        win_lengths: Sequence[int] | None = None,
        filters: int = 32,
        **kwargs,
    ):
        super().__init__()
        hops = hop_lengths or [n // 4 for n in n_ffts]
        wins = win_lengths or list(n_ffts)
        if not len(n_ffts) == len(hops) == len(wins):
            raise ValueError("n_ffts, hop_lengths and win_lengths must have the same length")
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(n, h, w, filters=filters, **kwargs) for n, h, w in zip(n_ffts, hops, wins)
        )

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        return run_each(self.discriminators, x)
