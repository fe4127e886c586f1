"""Mel filterbank and multi-resolution log-mel distance (torch STFT; no torchaudio/librosa).

The filterbank is the HTK mel scale with triangular filters, normalised to unit area (Slaney-style)
so that every band weighs the same whatever its width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular mel filters as a [n_mels, n_fft // 2 + 1] float32 matrix.

    Raises ValueError when a filter would cover no FFT bin (too many mels for this n_fft).
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= {sample_rate / 2}, got fmin={fmin}, fmax={fmax}")
    bin_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz[None] - lower) / (centre - lower)
    falling = (upper - bin_hz[None]) / (upper - centre)
    fb = np.clip(np.minimum(rising, falling), 0.0, None)
    # Unit area: wide high-frequency bands do not dominate the distance.
    fb *= (2.0 / (upper - lower))
    if (fb.sum(axis=1) == 0).any():
        raise ValueError(f"{n_mels} mel bands is too many for n_fft={n_fft} at {sample_rate} Hz")
    return fb.astype(np.float32)


@dataclass(frozen=True)
class MelResolution:
    n_fft: int
    n_mels: int

    @property
    def hop(self) -> int:
        return self.n_fft // 4


#: (n_fft, n_mels) pairs at 16 kHz (n_fft scales with the rate); fine time resolution with few bands up to fine frequency resolution.
DEFAULT_RESOLUTIONS: tuple[MelResolution, ...] = (
    MelResolution(256, 32),
    MelResolution(512, 64),
    MelResolution(1024, 80),
    MelResolution(2048, 128),
)


def log_mel(audio: torch.Tensor, sample_rate: int, res: MelResolution, floor: float = 1e-5) -> torch.Tensor:
    """[..., T] waveform -> [..., n_mels, frames] log10 mel magnitude."""
    window = torch.hann_window(res.n_fft, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(
        audio.reshape(-1, audio.shape[-1]), res.n_fft, hop_length=res.hop, win_length=res.n_fft,
        window=window, center=True, return_complex=True,
    ).abs()
    fb = torch.from_numpy(mel_filterbank(sample_rate, res.n_fft, res.n_mels)).to(audio)
    mel = torch.matmul(fb, spec)
    return torch.log10(mel.clamp_min(floor)).reshape(*audio.shape[:-1], res.n_mels, -1)


def mel_distance(
    ref: np.ndarray,
    deg: np.ndarray,
    sample_rate: int,
    resolutions: tuple[MelResolution, ...] = DEFAULT_RESOLUTIONS,
) -> float:
    """Mean over resolutions of the mean absolute log10-mel difference (0 = identical; lower is better).

    Resolutions whose window is longer than the signal are skipped; ValueError if none fits.
    """
    x = torch.as_tensor(np.asarray(ref, dtype=np.float32))
    y = torch.as_tensor(np.asarray(deg, dtype=np.float32))
    if x.shape != y.shape:
        raise ValueError(f"reference and degraded lengths differ: {x.shape} vs {y.shape}")
    # Keep window durations about constant across sample rates (n_fft set for 16 kHz).
    scale = 2 ** max(0, round(np.log2(sample_rate / 16000)))
    scaled = [MelResolution(r.n_fft * scale, r.n_mels) for r in resolutions]
    usable = [r for r in scaled if r.n_fft <= x.shape[-1]]
    if not usable:
        raise ValueError(f"signal of {x.shape[-1]} samples is shorter than every mel window")
    with torch.no_grad():
        dists = [(log_mel(x, sample_rate, r) - log_mel(y, sample_rate, r)).abs().mean() for r in usable]
    return float(torch.stack(dists).mean())
