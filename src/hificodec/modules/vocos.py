"""Frame-rate decoder with an inverse-STFT head (as in Vocos / WavTokenizer).

All layers run at the code frame rate; one iSTFT turns predicted magnitude and phase into samples.
Much cheaper on CPU than transposed-convolution upsampling.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..dsp.oscillator import harmonic_excitation
from ..dsp.stft import centered_stft
from .griffin_lim import fast_griffin_lim
from .pitch import pitch_to_hz


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, kernel_size: int = 7, layer_scale: float = 1e-2) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
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
    """

    def __init__(
        self, dim: int, n_fft: int, hop_length: int, phase_advance: bool = False, sample_rate: int | None = None
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.phase_advance = phase_advance
        self.frame_period = n_fft // math.gcd(n_fft, hop_length) if phase_advance else 1
        self.out = nn.Linear(dim, n_fft + 2)
        self.window: torch.Tensor
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # harmonic excitation (given a sample rate): a per-bin gain on the spectrum of a harmonic
        # oscillator at the predicted f0, added to the predicted spectrum. The oscillator supplies
        # what a frame-rate network finds hardest, harmonics with a coherent phase; the network only
        # shapes them. The gain is linear and signed, zero at the start (a fine-tune begins from the
        # model it starts from): an exp-parameterised gain would need thousands of Adam steps to
        # climb from a harmless starting value to a useful one.
        self.sample_rate = sample_rate
        self.excitation_gain: nn.Linear | None = None
        if sample_rate is not None:
            self.excitation_gain = nn.Linear(dim, n_fft // 2 + 1)
            nn.init.zeros_(self.excitation_gain.weight)
            nn.init.zeros_(self.excitation_gain.bias)

    def advance(self, frames: int, device: torch.device) -> torch.Tensor:
        """[n_fft // 2 + 1, frames] phase advance, exact integer arithmetic modulo n_fft."""
        k = torch.arange(self.n_fft // 2 + 1, device=device)
        t = torch.arange(frames, device=device) % self.frame_period
        steps = (k[:, None] * self.hop_length * t[None, :]) % self.n_fft
        return steps.float() * (2 * math.pi / self.n_fft)

    def forward(
        self, x: torch.Tensor, pitch: torch.Tensor | None = None, cycles: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x [B, dim, F] -> wav [B, 1, F * hop]; pitch [B, 2, F] (pitch-head output) drives the
        harmonic excitation when the head has one, with the oscillator phase `cycles` [B, F * hop]
        (default: counted from the first sample)."""
        h = self.out(x.transpose(1, 2)).transpose(1, 2).float()
        log_mag, phase = h.chunk(2, dim=1)
        if self.phase_advance:
            phase = phase + self.advance(phase.shape[-1], phase.device)
        mag = torch.exp(log_mag).clamp(max=1e2)  # bounded: an exploding magnitude would ruin the OLA
        spec = torch.polar(mag, phase)
        frames = x.shape[-1]
        if self.excitation_gain is not None:
            if pitch is None:
                raise ValueError("this decoder's harmonic excitation needs the pitch head's output")
            spec = spec + self._excitation(x, pitch, cycles)
        wav = torch.istft(
            spec,
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=True,
            length=frames * self.hop_length,
        )
        return wav.unsqueeze(1)

    def _excitation(self, x: torch.Tensor, pitch: torch.Tensor, cycles: torch.Tensor | None) -> torch.Tensor:
        """Gain-shaped STFT [B, bins, F] of a harmonic oscillator following the predicted pitch."""
        assert self.excitation_gain is not None and self.sample_rate is not None
        f0, voicing = pitch_to_hz(pitch.detach())
        source = harmonic_excitation(f0, voicing, self.sample_rate, self.hop_length, cycles)
        source_spec = centered_stft(source, self.n_fft, self.hop_length, self.window)[..., : x.shape[-1]]
        gain = self.excitation_gain(x.transpose(1, 2)).transpose(1, 2).float().clamp(-1e2, 1e2)
        return gain * source_spec


class MagnitudeHead(nn.Module):
    """Predict log-magnitudes only, `hop_length // stft_hop` STFT frames per code frame; the phase
    comes from fast Griffin-Lim.

    Why: a frame-rate network has to invent a coherent phase, which it learns only after long GAN
    training; with true magnitudes Griffin-Lim alone reaches PESQ-WB ~4 on speech. In training the
    Griffin-Lim phase (fewer iterations, no gradient) is held fixed and the losses on the output
    waveform reach the magnitudes through the inverse STFT.
    """

    frame_period = 1  # zero initial phase: nothing repeats, chunks need no alignment

    def __init__(
        self,
        dim: int,
        hop_length: int,
        n_fft: int,
        stft_hop: int,
        iterations: int = 32,
        train_iterations: int = 8,
    ) -> None:
        super().__init__()
        if hop_length % stft_hop:
            raise ValueError(f"stft_hop {stft_hop} must divide the code hop {hop_length}")
        self.n_fft = n_fft
        self.stft_hop = stft_hop
        self.hop_length = hop_length
        self.subframes = hop_length // stft_hop
        self.iterations = iterations
        self.train_iterations = train_iterations
        self.bins = n_fft // 2 + 1
        self.out = nn.Linear(dim, self.subframes * self.bins)
        self.window: torch.Tensor
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def log_magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, dim, F] -> log-magnitude [B, bins, F * subframes]."""
        h = self.out(x.transpose(1, 2)).float()  # [B, F, subframes * bins]
        b, f, _ = h.shape
        return h.reshape(b, f * self.subframes, self.bins).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, pitch: torch.Tensor | None = None, cycles: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x [B, dim, F] -> wav [B, 1, F * hop] (pitch and cycles are not used)."""
        mag = torch.exp(self.log_magnitude(x)).clamp(max=1e2)
        length = x.shape[-1] * self.hop_length
        iterations = self.train_iterations if self.training else self.iterations
        with torch.no_grad():
            phase = fast_griffin_lim(mag, self.n_fft, self.stft_hop, self.window, length, iterations)
        spec = torch.polar(mag, phase)
        wav = torch.istft(spec, self.n_fft, self.stft_hop, window=self.window, center=True, length=length)
        return wav.unsqueeze(1)


class VocosDecoder(nn.Module):
    """latent [B, in_channels, F] -> wav [B, 1, F * hop_length], every layer at frame rate."""

    def __init__(
        self,
        *,
        in_channels: int,
        hop_length: int,
        dim: int = 384,
        hidden_dim: int = 1152,
        num_layers: int = 8,
        n_fft: int | None = None,
        kernel_size: int = 7,
        phase_advance: bool = False,
        head: str = "istft",
        stft_hop: int | None = None,
        griffin_lim_iterations: int = 32,
        griffin_lim_train_iterations: int = 8,
        excitation: bool = False,
        sample_rate: int | None = None,
    ) -> None:
        super().__init__()
        self.hop_length = hop_length
        #: True when forward() needs the pitch head's output (harmonic excitation)
        self.uses_pitch = excitation
        if excitation and (head != "istft" or sample_rate is None):
            raise ValueError("decoder.excitation needs the istft head and the model's sample rate")
        self.embed = nn.Conv1d(in_channels, dim, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, hidden_dim, kernel_size, layer_scale=1.0 / num_layers) for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head: nn.Module
        if head == "istft":
            self.head = ISTFTHead(
                dim, n_fft or 4 * hop_length, hop_length, phase_advance, sample_rate if excitation else None
            )
        elif head == "magnitude":
            if phase_advance:
                raise ValueError("phase_advance applies to the istft head only (the magnitude head has no phase)")
            hop = stft_hop or hop_length // 2
            self.head = MagnitudeHead(
                dim, hop_length, n_fft or 4 * hop, hop, griffin_lim_iterations, griffin_lim_train_iterations
            )
        else:
            raise ValueError(f"unknown vocos head '{head}' (choose istft or magnitude)")

    def forward(
        self, z: torch.Tensor, pitch: torch.Tensor | None = None, cycles: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.norm(self.embed(z).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        x = self.final_norm(x.transpose(1, 2)).transpose(1, 2)
        return self.head(x, pitch, cycles)
