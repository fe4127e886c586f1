"""Helpers shared by the scripts: Praat f0 (`pip install praat-parselmouth`) and manifest clips."""

from __future__ import annotations

import os

import numpy as np

from hificodec.data.manifest import ManifestEntry, read_entries


def praat_f0(x: np.ndarray, sample_rate: int, times: np.ndarray, time_step: float) -> np.ndarray:
    """f0 in Hz at `times` (seconds), 0 where unvoiced."""
    import parselmouth

    pitch = parselmouth.Sound(x.astype(np.float64), sample_rate).to_pitch(
        time_step=time_step, pitch_floor=60, pitch_ceiling=500
    )
    return np.nan_to_num(np.array([pitch.get_value_at_time(float(t)) or 0.0 for t in times]))


def pick_entries(
    manifest: str | os.PathLike, count: int, min_seconds: float = 0.0, spread: bool = False
) -> list[ManifestEntry]:
    """The first `count` entries not known to be shorter than `min_seconds`; or, with `spread`,
    `count` spread evenly over the manifest."""
    entries = [e for e in read_entries(manifest) if e.duration is None or e.duration >= min_seconds]
    step = max(1, len(entries) // max(count, 1)) if spread else 1
    return entries[::step][:count]
