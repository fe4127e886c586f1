from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def write_clips(folder: Path, n: int = 6, seed: int = 0) -> Path:
    """Harmonic tones with vibrato and a little noise: structured audio a tiny codec can learn."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        sr = 16000 if i % 2 == 0 else 22050
        t = np.arange(int(sr * (0.4 + 0.2 * i))) / sr
        f0 = 120 + 40 * i
        x = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t + 3 * np.sin(2 * np.pi * 4 * t)) for k in (1, 2, 3))
        x = x + 0.01 * rng.standard_normal(len(t))
        sf.write(folder / f"clip{i}.wav", x.astype(np.float32), sr)
    return folder


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    return write_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="session")
def recipes() -> Path:
    return RECIPES
