"""A frame-rate encoder over log-mel frames: the structure of speech given, not learned.

A waveform encoder (SEANet) spends most of its compute, and much of its training, learning a
filterbank at the full sample rate. This encoder starts from one: a windowed DFT written as a fixed
strided convolution, mel bands and a log, then a small ConvNeXt stack at the mel frame rate and one
strided convolution down to the code rate. Every layer after the frontend runs at 100 frames per second
or fewer, so encoding costs a fraction of a SEANet pass, and the codes see the spectral envelope from
the first training step.

Frames are centred on multiples of the frontend hop (reflect padding of n_fft / 2 on the left and
n_fft / 2 - hop on the right), so an input of F code hops gives exactly F code frames.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..dsp.mel import mel_filterbank
from ..dsp.padding import pad1d
from .vocos import ConvNeXtBlock

#: log floor of the mel magnitudes (about -100 dB re full scale)
LOG_FLOOR = 1e-5


class LogMelFrontend(nn.Module):
    """wav [B, 1, T] -> log-mel magnitudes [B, n_mels, T / hop] (T a multiple of hop).

    The DFT is a convolution with fixed windowed cosine and sine kernels (buffers, not weights), so the
    same arithmetic runs in training, streaming (`frames` on each window) and ONNX export.
    """

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int) -> None:
        super().__init__()
        if n_fft < 2 * hop_length or n_fft % 2:
            raise ValueError(f"the mel frontend needs an even n_fft >= 2 hops, got {n_fft} at hop {hop_length}")
        self.n_fft, self.hop_length, self.n_mels = n_fft, hop_length, n_mels
        bins = n_fft // 2 + 1
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(bins, dtype=torch.float64)[:, None]
        angle = (2 * math.pi / n_fft) * torch.remainder(k * n, n_fft)
        window = torch.hann_window(n_fft, dtype=torch.float64)
        basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window]).unsqueeze(1)
        self.basis: torch.Tensor
        self.filterbank: torch.Tensor
        self.register_buffer("basis", basis.float(), persistent=False)  # [2 * bins, 1, n_fft]
        self.register_buffer("filterbank", mel_filterbank(sample_rate, n_fft, n_mels).clone(), persistent=False)

    @property
    def left_pad(self) -> int:
        return self.n_fft // 2

    @property
    def right_pad(self) -> int:
        return self.n_fft // 2 - self.hop_length

    def frames(self, padded: torch.Tensor) -> torch.Tensor:
        """Padded samples [B, 1, n] -> one log-mel frame per whole window [B, n_mels, frames]."""
        spec = nn.functional.conv1d(padded, self.basis, stride=self.hop_length)
        re, im = spec.chunk(2, dim=1)
        mag = torch.sqrt(re.square() + im.square() + 1e-9)  # as dsp.mel
        mel = torch.matmul(self.filterbank, mag)
        return torch.log(mel.clamp(min=LOG_FLOOR))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.frames(pad1d(wav, self.left_pad, self.right_pad, "reflect"))


class MelEncoder(nn.Module):
    """wav [B, 1, T] -> latent [B, dimension, T / hop_length], every layer at frame rate.

    frontend: log-mel frames every `hop_length / downsample` samples (n_fft, n_mels)
    body: a 1-frame conv into `dim` channels, `num_layers` ConvNeXt blocks (kernel `kernel_size`),
    then a strided conv down by `downsample` to the code rate and `post_layers` more blocks there.
    """

    def __init__(
        self,
        *,
        dimension: int,
        sample_rate: int,
        hop_length: int,
        downsample: int = 2,
        n_fft: int = 640,
        n_mels: int = 80,
        dim: int = 256,
        hidden_dim: int = 768,
        num_layers: int = 4,
        post_layers: int = 2,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        if downsample < 2 or downsample % 2 or hop_length % downsample:
            raise ValueError(
                f"the mel encoder downsamples by an even factor that divides its hop {hop_length}, got {downsample}"
            )
        self.hop_length = hop_length
        self.frontend = LogMelFrontend(sample_rate, n_fft, hop_length // downsample, n_mels)
        blocks = num_layers + post_layers
        self.embed = nn.Conv1d(n_mels, dim, kernel_size, padding=kernel_size // 2)
        self.blocks = nn.Sequential(
            *(ConvNeXtBlock(dim, hidden_dim, kernel_size, layer_scale=1.0 / blocks) for _ in range(num_layers))
        )
        # kernel 2 x downsample with symmetric padding: F * downsample frames -> F frames
        self.down = nn.Conv1d(dim, dim, 2 * downsample, stride=downsample, padding=downsample // 2)
        self.post = nn.Sequential(
            *(ConvNeXtBlock(dim, hidden_dim, kernel_size, layer_scale=1.0 / blocks) for _ in range(post_layers))
        )
        self.project = nn.Conv1d(dim, dimension, 1)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.frontend(wav)
        x = self.blocks(self.embed(x))
        return self.project(self.post(self.down(x)))
