"""Speech-like test signals: espeak-ng may be missing on CI, and PESQ needs speech-like input.

A voiced source (harmonics of a gliding f0) shaped by formant resonances that move from syllable to
syllable, with syllable-rate (~4 Hz) amplitude modulation, short pauses, and a little breath noise.
"""

from __future__ import annotations

import numpy as np
import pytest

# (F1, F2, F3) in Hz of a few vowels
_VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (300, 870, 2240), (640, 1190, 2390)]


def synth_speech(duration: float = 3.0, sample_rate: int = 16000, seed: int = 0, f0: float = 120.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(duration * sample_rate)
    t = np.arange(n) / sample_rate
    syllable_rate = 4.0
    syll = np.floor(t * syllable_rate).astype(int)
    n_syll = int(syll.max()) + 1
    vowel_idx = rng.integers(0, len(_VOWELS), n_syll)
    formants = np.array([_VOWELS[i] for i in vowel_idx], dtype=np.float64)[syll]  # [n, 3]
    # Smooth formant transitions (~30 ms) so the spectrum moves like speech, not in steps.
    k = int(0.03 * sample_rate)
    kernel = np.ones(k) / k
    formants = np.stack([np.convolve(formants[:, j], kernel, mode="same") for j in range(3)], axis=1)
    pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)) + 0.05 * rng.standard_normal())
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    out = np.zeros(n)
    bandwidths = np.array([80.0, 120.0, 180.0])
    for h in range(1, int(0.45 * sample_rate / f0)):
        fh = h * pitch
        env = np.sum(np.exp(-0.5 * ((fh[:, None] - formants) / bandwidths) ** 2) * [1.0, 0.6, 0.3], axis=1)
        env = (env + 0.01) * (fh < 0.45 * sample_rate) / np.sqrt(h)
        out += env * np.sin(h * phase)
    # Syllable envelope: raised cosine per syllable, every 5th syllable a pause.
    am = 0.5 - 0.5 * np.cos(2 * np.pi * (t * syllable_rate % 1.0))
    am *= syll % 5 != 4
    noise = rng.standard_normal(n) * 0.02
    x = am * out + am * noise
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture
def speech():
    """synth_speech(duration=3.0, sample_rate=16000, seed=0, f0=120.0) -> float32 [samples]."""
    return synth_speech
