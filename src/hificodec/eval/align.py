"""Time alignment of a codec's output with its reference (delay estimate by cross-correlation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Alignment:
    """`delay` samples: positive when the degraded signal lags the reference (deg[t + delay] ~ ref[t]).

    `confidence` is the peak normalised cross-correlation (0..1); below the threshold the delay is
    not trusted and 0 is used instead (an unrelated output has no meaningful delay).
    """

    delay: int
    confidence: float
    sample_rate: int

    @property
    def delay_ms(self) -> float:
        return 1000.0 * self.delay / self.sample_rate


def estimate_delay(
    ref: np.ndarray,
    deg: np.ndarray,
    sample_rate: int,
    max_delay_ms: float = 100.0,
    min_confidence: float = 0.2,
) -> Alignment:
    """Lag of `deg` against `ref` in [-max_delay, +max_delay] samples maximising cross-correlation."""
    x = np.asarray(ref, dtype=np.float64) - np.mean(ref)
    y = np.asarray(deg, dtype=np.float64) - np.mean(deg)
    max_lag = int(round(max_delay_ms * sample_rate / 1000))
    n = len(x) + len(y) - 1
    nfft = 1 << (n - 1).bit_length()
    # corr[k] = sum_t x[t] * y[t + k]: the lag at which y best matches x.
    corr = np.fft.irfft(np.conj(np.fft.rfft(x, nfft)) * np.fft.rfft(y, nfft), nfft)
    lags = np.concatenate([np.arange(0, min(max_lag, len(y) - 1) + 1), np.arange(-min(max_lag, len(x) - 1), 0)])
    values = corr[lags % nfft]
    best = int(np.argmax(values))
    norm = np.sqrt(np.dot(x, x) * np.dot(y, y))
    confidence = float(values[best] / norm) if norm > 0 else 0.0
    if confidence < min_confidence:
        return Alignment(0, confidence, sample_rate)
    return Alignment(int(lags[best]), confidence, sample_rate)


def apply_alignment(ref: np.ndarray, deg: np.ndarray, delay: int) -> tuple[np.ndarray, np.ndarray]:
    """Shift by `delay` (see `Alignment`) and crop both signals to their common length."""
    if delay > 0:
        deg = deg[delay:]
    elif delay < 0:
        ref = ref[-delay:]
    n = min(len(ref), len(deg))
    return ref[:n], deg[:n]


def align_and_crop(
    ref: np.ndarray, deg: np.ndarray, sample_rate: int, max_delay_ms: float = 100.0
) -> tuple[np.ndarray, np.ndarray, Alignment]:
    """Estimate the delay, compensate it, crop to equal length."""
    a = estimate_delay(ref, deg, sample_rate, max_delay_ms=max_delay_ms)
    r, d = apply_alignment(ref, deg, a.delay)
    return r, d, a
