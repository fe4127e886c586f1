"""Tiny LibriTTS- and VCTK-layout trees (short generated tones, real folder structure and transcripts)
for the manifest, split and token tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float, freq: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_libritts(
    root: Path,
    speakers: dict[str, tuple[str, ...]] | None = None,
    per_speaker: int = 2,
    sr: int = 24000,
    seconds: float = 0.3,
) -> Path:
    """`root/<subset>/<speaker>/<chapter>/<spk>_<chap>_<n>_000000.wav` with `.normalized.txt` transcripts.

    speakers: subset -> speaker ids (default: 4 in train-clean-100, one each in dev-clean and test-clean).
    """
    speakers = speakers or {"train-clean-100": ("19", "26", "27", "32"), "dev-clean": ("84",),
                            "test-clean": ("1089",)}  # fmt: skip
    for subset, ids in speakers.items():
        for k, spk in enumerate(ids):
            chapter = f"{100 + k}"
            for i in range(per_speaker):
                stem = root / subset / spk / chapter / f"{spk}_{chapter}_{i:06d}_000000"
                stem.parent.mkdir(parents=True, exist_ok=True)
                sf.write(stem.with_suffix(".wav"), tone(seconds + 0.05 * i, 150 + 10 * int(spk) % 300, sr), sr)
                stem.with_suffix(".normalized.txt").write_text(f"Speaker {spk} says line {i}.")
                stem.with_suffix(".original.txt").write_text(f"speaker {spk} says line {i}")
    return root


def make_vctk(root: Path, speakers: tuple[str, ...] = ("p225", "p226", "p227", "p228", "p229", "p230", "p360"),
              per_speaker: int = 2, sr: int = 48000, seconds: float = 0.2) -> Path:
    """VCTK 0.92: `root/wav48_silence_trimmed/<spk>/<spk>_<n>_mic{1,2}.flac` and `root/txt/<spk>/<spk>_<n>.txt`."""
    for k, spk in enumerate(speakers):
        for i in range(1, per_speaker + 1):
            for mic in ("mic1", "mic2"):
                path = root / "wav48_silence_trimmed" / spk / f"{spk}_{i:03d}_{mic}.flac"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, tone(seconds, 200 + 20 * k, sr), sr)
            text = root / "txt" / spk / f"{spk}_{i:03d}.txt"
            text.parent.mkdir(parents=True, exist_ok=True)
            text.write_text(f"Please call Stella, {spk} number {i}.\n")
    return root
