"""Multi-resolution log-mel distance for evaluation, on the shared mel filterbank (`dsp.mel`).

distance = mean over resolutions of mean |ln mel(ref) - ln mel(deg)| (magnitude mel, Slaney scale,
floor 1e-5). Windows are set for 16 kHz and scale by powers of two with the sample rate, so the
window durations stay about the same for 24/48 kHz models.
"""

from __future__ import annotations

import numpy as np
import torch

from ..dsp.mel import MelResolution, log_mel_spectrogram

#: (n_fft, n_mels) at 16 kHz; hop = n_fft / 4, window = n_fft.
DEFAULT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((256, 32), (512, 64), (1024, 80), (2048, 128))


def resolutions_for(sample_rate: int, base: tuple[tuple[int, int], ...] = DEFAULT_RESOLUTIONS) -> list[MelResolution]:
    scale = 2 ** max(0, round(float(np.log2(sample_rate / 16000))))
    return [MelResolution(n * scale, n * scale // 4, n * scale, n_mels=m) for n, m in base]


def mel_distance(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """Raises ValueError when the lengths differ or the signal is shorter than every window."""
    x = torch.as_tensor(np.asarray(ref, dtype=np.float32)).reshape(1, -1)
    y = torch.as_tensor(np.asarray(deg, dtype=np.float32)).reshape(1, -1)
    if x.shape != y.shape:
        raise ValueError(f"reference and degraded lengths differ: {x.shape[-1]} vs {y.shape[-1]}")
    usable = [r for r in resolutions_for(sample_rate) if r.n_fft <= x.shape[-1]]
    if not usable:
        raise ValueError(f"too short for the mel distance ({x.shape[-1]} samples)")
    with torch.no_grad():
        d = [
            (log_mel_spectrogram(x, sample_rate, r) - log_mel_spectrogram(y, sample_rate, r)).abs().mean()
            for r in usable
        ]
    return float(torch.stack(d).mean())
