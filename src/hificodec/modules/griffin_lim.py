"""Fast Griffin-Lim (Perraudin et al., 2013): a phase for a magnitude spectrogram.

Used by the magnitude-only decoder head. Measured on our corpus with true magnitudes (n_fft 640,
hop 160, zero initial phase): 8 iterations give PESQ-WB 3.0-3.5, 32 give 3.9-4.2, so phase need not
be learned at all once the magnitudes are right.
"""

from __future__ import annotations

import torch

from ..dsp.stft import centered_stft


def fast_griffin_lim(
    magnitude: torch.Tensor,
    n_fft: int,
    hop_length: int,
    window: torch.Tensor,
    length: int,
    iterations: int,
    momentum: float = 0.99,
) -> torch.Tensor:
    """Phase [..., bins, frames] for `magnitude`, starting from zero phase.

    Zero (not random) initial phase keeps decoding deterministic, and the result of one window
    independent of where it sits in a longer signal.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    shape = magnitude.shape
    mag = magnitude.reshape(-1, *shape[-2:])
    spec = mag.to(torch.complex64)
    previous: torch.Tensor | None = None
    for _ in range(iterations):
        wav = torch.istft(spec, n_fft, hop_length, window=window, center=True, length=length)
        rebuilt = centered_stft(wav, n_fft, hop_length, window)
        rebuilt = rebuilt[..., : mag.shape[-1]]  # `length` samples can give one frame more than `mag`
        accelerated = rebuilt if previous is None else rebuilt + momentum * (rebuilt - previous)
        previous = rebuilt
        spec = mag * torch.exp(1j * torch.angle(accelerated))
    return torch.angle(spec).reshape(shape)
