"""Frame-rate decoder with an inverse-STFT head (as in Vocos / WavTokenizer).

All layers run at the code frame rate; one iSTFT turns predicted magnitude and phase into samples.
Much cheaper on CPU than transposed-convolution upsampling. The decoder is a ConvNeXt backbone and a
head object the model builder makes from the config (`models.codec`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..dsp.stft import centered_stft, overlap_add_istft

#: backbone width when the config gives none
DEFAULT_DIM = 384


class _TimeConv(nn.Conv1d):
    """Conv1d over frames, zero-padded centred (looks ahead kernel_size // 2 frames) or causal (all
    padding on the left: frame t sees frames <= t). Same parameters either way, so a causal model can
    start from a centred one's weights."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, groups: int = 1, causal: bool = False
    ) -> None:
        padding = 0 if causal else kernel_size // 2
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, groups=groups)
        self.left_pad = kernel_size - 1 if causal else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_pad, 0)) if self.left_pad else x)


class ConvNeXtBlock(nn.Module):
    def __init__(
        self, dim: int, hidden_dim: int, kernel_size: int = 7, layer_scale: float = 1e-2, causal: bool = False
    ) -> None:
        super().__init__()
        self.dwconv = _TimeConv(dim, dim, kernel_size, groups=dim, causal=causal)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(hidden_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class ISTFTHead(nn.Module):
    """Predict log-magnitude and phase per frame, then overlap-add with torch.istft.

    phase_advance: add each bin's own phase advance (2 pi k hop / n_fft per frame) to the predicted
    phase, so that constant features give coherent sinusoids at the bin centres (as in a phase
    vocoder) instead of a phase that repeats every frame, which only multiples of the frame rate
    satisfy. The advance repeats every `frame_period` frames; chunked decoding aligns to it.

    frame_shift: synthesis frame k is centred on sample (k + frame_shift) * hop instead of k * hop. With
    n_fft = 4 hops a centred frame reaches two hops ahead, so an output sample needs codes two frames
    ahead; a shift of one brings that to one frame (the causal preset's 40 ms latency).

    excitation: add the spectrum of an excitation signal given to `forward` (the pitch component's
    harmonic oscillator, `models.pitch`), shaped by a per-bin gain read from the features. The
    oscillator supplies what a frame-rate network finds hardest, harmonics with a coherent phase; the
    network only shapes them. The gain is linear and signed, zero at the start (a fine-tune begins from
    the model it starts from): an exp-parameterised gain would need thousands of Adam steps to climb
    from a harmless starting value to a useful one.
    """

    def __init__(
        self,
        dim: int,
        n_fft: int,
        hop_length: int,
        phase_advance: bool = False,
        excitation: bool = False,
        frame_shift: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= frame_shift * hop_length <= n_fft // 2:
            raise ValueError(f"frame_shift must be between 0 and {n_fft // 2 // hop_length}, got {frame_shift}")
        if excitation and frame_shift > 1:
            raise ValueError("an excitation head takes a frame_shift of 0 or 1")
        self.dim = dim
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.frame_shift = frame_shift
        self.phase_advance = phase_advance
        self.frame_period = n_fft // math.gcd(n_fft, hop_length) if phase_advance else 1
        self.out = nn.Linear(dim, n_fft + 2)
        self.window: torch.Tensor
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.excitation_gain: nn.Linear | None = None
        if excitation:
            self.excitation_gain = nn.Linear(dim, n_fft // 2 + 1)
            nn.init.zeros_(self.excitation_gain.weight)
            nn.init.zeros_(self.excitation_gain.bias)

    @property
    def uses_excitation(self) -> bool:
        return self.excitation_gain is not None

    def advance(self, frames: int, device: torch.device) -> torch.Tensor:
        """[n_fft // 2 + 1, frames] phase advance, exact integer arithmetic modulo n_fft."""
        k = torch.arange(self.n_fft // 2 + 1, device=device)
        t = torch.arange(frames, device=device) % self.frame_period
        steps = (k[:, None] * self.hop_length * t[None, :]) % self.n_fft
        return steps.float() * (2 * math.pi / self.n_fft)

    def forward(self, x: torch.Tensor, excitation: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, dim, F] -> wav [B, 1, F * hop]; `excitation` [B, F * hop] is the signal whose shaped
        spectrum is added, required exactly when the head was built with `excitation`."""
        if self.uses_excitation != (excitation is not None):
            raise ValueError(
                "this head adds a harmonic excitation: pass the excitation signal" if self.uses_excitation
                else "this head has no excitation gain: it takes no excitation signal"
            )
        h = self.out(x.transpose(1, 2)).transpose(1, 2).float()
        log_mag, phase = h.chunk(2, dim=1)
        if self.phase_advance:
            phase = phase + self.advance(phase.shape[-1], phase.device)
        mag = torch.exp(log_mag).clamp(max=1e2)  # bounded: an exploding magnitude would ruin the OLA
        spec = torch.polar(mag, phase)
        if excitation is not None:
            spec = spec + self._shaped_excitation(x, excitation)
        wav = overlap_add_istft(spec, self.n_fft, self.hop_length, self.window, self.frame_shift)
        return wav.unsqueeze(1)

    def _shaped_excitation(self, x: torch.Tensor, excitation: torch.Tensor) -> torch.Tensor:
        """Gain-shaped STFT [B, bins, F] of the excitation signal."""
        assert self.excitation_gain is not None
        # the frames centred where the synthesis frames are (one past the end: reflect-padded excitation)
        shift = self.frame_shift
        source_spec = centered_stft(excitation, self.n_fft, self.hop_length, self.window)
        source_spec = source_spec[..., shift : shift + x.shape[-1]]
        gain = self.excitation_gain(x.transpose(1, 2)).transpose(1, 2).float().clamp(-1e2, 1e2)
        return gain * source_spec


class FrameUpsample(nn.Module):
    """[B, dim, F] -> [B, dim, F * factor]: each frame's features split into `factor` sub-frames by one
    linear map (a pixel shuffle over time), so a decoder at the code rate can drive an iSTFT head with a
    shorter hop: 10 ms frames render formant transitions that 20 ms frames smear."""

    def __init__(self, dim: int, factor: int) -> None:
        super().__init__()
        self.dim, self.factor = dim, factor
        self.proj = nn.Linear(dim, dim * factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, frames = x.shape
        y = self.proj(x.transpose(1, 2))  # [B, F, dim * factor]
        return y.reshape(batch, frames * self.factor, self.dim).transpose(1, 2)


class VocosDecoder(nn.Module):
    """latent [B, in_channels, F] -> ConvNeXt backbone (every layer at frame rate) -> `head` ->
    wav [B, 1, F * hop_length].

    upsample: sub-frames per code frame (`FrameUpsample`), followed by `upsampled_layers` ConvNeXt
    blocks at the sub-frame rate; the head's hop is the code hop divided by it.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        head: ISTFTHead,
        dim: int = DEFAULT_DIM,
        hidden_dim: int = 1152,
        num_layers: int = 8,
        kernel_size: int = 7,
        causal: bool = False,
        upsample: int = 1,
        upsampled_layers: int = 0,
    ) -> None:
        super().__init__()
        if head.dim != dim:
            raise ValueError(f"the head reads {head.dim} channels, the backbone gives {dim}")
        if upsample < 1 or (upsample == 1 and upsampled_layers):
            raise ValueError(f"upsample must be >= 1 (and > 1 for upsampled layers), got {upsample}")
        self.upsample = upsample
        self.hop_length = head.hop_length * upsample
        #: chunked decoding must start windows at multiples of this (code) frame index: the head's
        #: period in its own frames, counted in whole code frames
        self.frame_period = head.frame_period // math.gcd(head.frame_period, upsample)
        #: True when forward() needs an excitation signal
        self.uses_excitation = head.uses_excitation
        # the backbone's layers sit directly on the decoder (checkpoint names decoder.embed, decoder.blocks.N)
        self.causal = causal
        self.embed = _TimeConv(in_channels, dim, kernel_size, causal=causal)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, hidden_dim, kernel_size, layer_scale=1.0 / num_layers, causal=causal)
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.upsampler = FrameUpsample(dim, upsample) if upsample > 1 else None
        self.upsampled_blocks = nn.ModuleList(
            ConvNeXtBlock(dim, hidden_dim, kernel_size, layer_scale=1.0 / num_layers, causal=causal)
            for _ in range(upsampled_layers)
        )
        self.head = head

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """latent [B, in_channels, F] -> the head's input [B, dim, F * upsample]."""
        x = self.norm(self.embed(z).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        x = self.final_norm(x.transpose(1, 2)).transpose(1, 2)
        if self.upsampler is not None:
            x = self.upsampler(x)
            for block in self.upsampled_blocks:
                x = block(x)
        return x

    def forward(self, z: torch.Tensor, excitation: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(z), excitation)
