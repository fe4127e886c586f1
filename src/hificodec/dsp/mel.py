"""Mel filterbanks and log-mel spectrograms (training losses, validation and evaluation metrics).

The filterbank follows the Slaney mel scale with Slaney area normalisation (librosa's defaults, which
HiFi-GAN and HiFi-Codec were trained with). Filterbanks and windows are built once per
(sample rate, n_fft, n_mels, fmin, fmax, device) and cached: losses call them every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .stft import constant, stft

_F_SP = 200.0 / 3  # Slaney scale: linear below 1 kHz with 66.7 Hz per mel
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    lin = hz / _F_SP
    log = _MIN_LOG_MEL + torch.log(torch.clamp(hz, min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(hz >= _MIN_LOG_HZ, log, lin)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    lin = mel * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mel - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, log, lin)


def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, device: str) -> torch.Tensor:
    n_freqs = n_fft // 2 + 1
    fft_freqs = torch.linspace(0.0, sample_rate / 2, n_freqs, dtype=torch.float64)
    mel_pts = torch.linspace(
        float(hz_to_mel(torch.tensor(fmin, dtype=torch.float64))),
        float(hz_to_mel(torch.tensor(fmax, dtype=torch.float64))),
        n_mels + 2,
        dtype=torch.float64,
    )
    hz_pts = mel_to_hz(mel_pts)
    widths = torch.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    fb = torch.clamp(torch.minimum(lower, upper), min=0.0)
    fb = fb * (2.0 / (hz_pts[2:] - hz_pts[:-2]))[:, None]  # Slaney: equal area per filter
    return fb.to(dtype=torch.float32, device=device)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """[n_mels, n_fft // 2 + 1] filterbank (cached; do not modify the returned tensor in place)."""
    top = float(fmax) if fmax is not None else sample_rate / 2
    if not 0 <= fmin < top <= sample_rate / 2 + 1e-6:
        raise ValueError(f"mel range must satisfy 0 <= fmin < fmax <= sr/2, got {fmin}, {top} at {sample_rate}")
    args = (int(sample_rate), int(n_fft), int(n_mels), float(fmin), top, str(device))
    return constant(("mel", *args), lambda: _mel_filterbank(*args))


@dataclass(frozen=True)
class MelResolution:
    """One STFT/mel resolution; `weight` scales this resolution's term in a multi-resolution loss."""

    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 1.0  # 1: magnitude mel (HiFi-GAN), 2: power mel (torchaudio's default, Encodec)
    weight: float = 1.0


def mel_spectrogram(wav: torch.Tensor, sample_rate: int, res: MelResolution) -> torch.Tensor:
    """Linear-amplitude mel spectrogram [B, n_mels, frames] of [B, 1, T] audio."""
    return mel_from_spectrum(stft(wav, res.n_fft, res.hop_length, res.win_length), sample_rate, res)


def mel_from_spectrum(spec: torch.Tensor, sample_rate: int, res: MelResolution) -> torch.Tensor:
    """`mel_spectrogram` from the complex STFT at `res` (`dsp.stft.stft`), for callers that already have it."""
    mag = spec.real.square() + spec.imag.square()
    mag = torch.sqrt(mag + 1e-9) if res.power == 1.0 else mag.pow(res.power / 2)
    fb = mel_filterbank(sample_rate, res.n_fft, res.n_mels, res.fmin, res.fmax, mag.device)
    return torch.matmul(fb, mag)


def log_mel_spectrogram(
    wav: torch.Tensor, sample_rate: int, res: MelResolution, floor: float = 1e-5
) -> torch.Tensor:
    return torch.log(torch.clamp(mel_spectrogram(wav, sample_rate, res), min=floor))
