"""A tiny fake Debian package tree (same layout as the real packages) for the corpus builder tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR_IN = 22050


def tone(freq: float, seconds: float, sr: int = SR_IN, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, audio: np.ndarray, sr: int = SR_IN) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.T if audio.ndim == 2 else audio, sr)


def make_fake_tree(base: Path) -> dict[str, Path]:
    """Unpacked trees for festvox-ru, tuxpaint-stamps-default and kajongg; returns package -> root."""
    roots = {p: base / p for p in ("festvox-ru", "tuxpaint-stamps-default", "kajongg")}
    for pkg, root in roots.items():
        doc = root / "usr/share/doc" / pkg / "copyright"
        doc.parent.mkdir(parents=True)
        doc.write_text(f"License: fake licence of {pkg}\n")
    # festvox-ru: one speaker, 16 kHz mono PCM, 4 sentences of 2 s
    voice = roots["festvox-ru"] / "usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav"
    for i in range(4):
        write(voice / f"ru_{i:04d}.wav", tone(200 + 20 * i, 2.0, 16000), 16000)
    (voice.parent / "festival").mkdir()
    (voice.parent / "festival" / "notes.scm").write_text("; not audio")
    # tuxpaint: 5 languages (one voice each), 44.1 kHz stereo ogg descriptions + non-speech files
    stamps = roots["tuxpaint-stamps-default"] / "usr/share/tuxpaint/stamps/animals"
    for li, lang in enumerate(("fr", "ca", "ro", "es", "bg")):
        for i in range(3):
            left = tone(300 + 100 * li + 30 * i, 1.5, 44100)
            write(stamps / f"cat{i}_desc_{lang}.ogg", np.stack([left, 0.5 * left]), 44100)
    write(stamps / "cat0.ogg", tone(1000, 1.0, 44100), 44100)  # sound effect: not selected
    write(stamps / "cat0_desc_short_fr.ogg", tone(500, 1.0, 44100), 44100)  # no language suffix
    write(stamps / "dog_desc_fr.ogg", tone(700, 0.3, 44100), 44100)  # too short: dropped
    write(stamps / "owl_desc_ro.ogg", np.zeros(44100, np.float32), 44100)  # silent: dropped
    (stamps / "copy").mkdir()  # exact duplicate in another folder: dropped
    shutil.copyfile(stamps / "cat1_desc_fr.ogg", stamps / "copy" / "cat1_desc_ca.ogg")
    # kajongg: English voices/<speaker> and German voices/de/<speaker>; a 1 kHz tone checks resampling
    voices = roots["kajongg"] / "usr/share/kajongg/voices"
    for si, spk in enumerate(("male1", "female1")):
        for i in range(3):
            write(voices / spk / f"w{i}.ogg", tone(1000 if i == 0 else 400 + 50 * si + 10 * i, 1.2))
            write(voices / "de" / spk / f"w{i}.ogg", tone(450 + 50 * si + 10 * i, 1.1))
    return roots


class FakeFetcher:
    """Stands in for apt_fetch: copies a prepared tree into work_dir and counts calls."""

    def __init__(self, trees: dict[str, Path]):
        self.trees = trees
        self.calls: list[str] = []

    def __call__(self, package: str, work_dir: Path) -> Path:
        self.calls.append(package)
        dest = Path(work_dir) / "unpacked" / package
        if not dest.exists():
            shutil.copytree(self.trees[package], dest)
        return dest


@pytest.fixture(scope="session")
def fake_trees(tmp_path_factory) -> dict[str, Path]:
    return make_fake_tree(tmp_path_factory.mktemp("fake_debian"))
