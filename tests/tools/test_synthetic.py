"""MBROLA synthetic speech, driven through a fake espeak-ng (no TTS needed)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
import soundfile as sf

from hificodec.errors import HificodecError
from hificodec_tools.corpus.synthetic import fortune_sentences, synthesize_mbrola

# Writes a 22.05 kHz tone whose length follows the text, like espeak-ng -w would (stdlib only: fast).
FAKE_ESPEAK = f"""#!{sys.executable} -S
import math, struct, sys, wave
args = sys.argv[1:]
text = sys.stdin.read()
n = int(22050 * 0.25 * len(text.split()))
with wave.open(args[args.index("-w") + 1], "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(22050)
    w.writeframes(b"".join(struct.pack("<h", int(6000 * math.sin(i * 0.1))) for i in range(n)))
"""


@pytest.fixture
def tts_env(tmp_path):
    espeak = tmp_path / "espeak-ng"
    espeak.write_text(FAKE_ESPEAK)
    espeak.chmod(espeak.stat().st_mode | stat.S_IEXEC)
    mbrola = tmp_path / "mbrola"
    for v in ("us1", "de1", "fr1"):  # fr1 has no texts: not used
        (mbrola / v).mkdir(parents=True)
        (mbrola / v / v).write_bytes(b"")
    fortunes = tmp_path / "fortunes"
    (fortunes / "de").mkdir(parents=True)
    (fortunes / "cookies").write_text(
        "The quick brown fox jumps over the lazy dog. Another fine sentence is here!\n"
        "\t-- Somebody Famous\n%\n<nick> 12:00 chat logs are skipped\n%\nShort one.\n%\n"
        "Grace is the gift of the quiet mind, friends of the moment.\n"
    )
    (fortunes / "cookies.dat").write_bytes(b"\0\1")
    (fortunes / "de" / "spruch").write_text("Der frühe Vogel fängt den Wurm, sagt man gern.\n%\n")
    return {"espeak": str(espeak), "mbrola_dir": mbrola, "fortunes_dir": fortunes}


def test_fortune_sentences(tts_env):
    got = fortune_sentences(tts_env["fortunes_dir"])
    assert got == ["Another fine sentence is here!", "Grace is the gift of the quiet mind, friends of the moment.",
                   "The quick brown fox jumps over the lazy dog."]


def test_synthesize_is_reproducible_and_resumable(tts_env, tmp_path):
    entries = synthesize_mbrola(hours=20 / 3600, out_dir=tmp_path / "a", sample_rate=16000, seed=1,
                                progress=False, **tts_env)
    total = sum(e.duration for e in entries)
    assert 20 <= total < 20 + 10  # stops once the target is reached (utterances are < 10 s here)
    assert {e.speaker for e in entries} <= {"mbrola-us1", "mbrola-de1"} and len({e.speaker for e in entries}) == 2
    for e in entries:
        info = sf.info(e.path)
        assert e.synthetic is True and info.samplerate == 16000 and info.channels == 1
        assert (e.sample_rate, e.channels) == (16000, 1)
        assert e.language == ("de" if e.speaker == "mbrola-de1" else "en") and e.text
        assert 130 <= e.extra["rate"] <= 200 and 30 <= e.extra["pitch"] <= 70
    files = sorted(Path(tmp_path / "a").rglob("*.flac"))
    assert len(files) == len(entries)  # nothing left over beyond the target
    again = synthesize_mbrola(hours=20 / 3600, out_dir=tmp_path / "a", sample_rate=16000, seed=1,
                              progress=False, **tts_env)
    assert [(e.path, e.text) for e in again] == [(e.path, e.text) for e in entries]


def test_missing_voices_give_setup_instructions(tts_env, tmp_path):
    env = dict(tts_env, mbrola_dir=tmp_path / "none")
    with pytest.raises(HificodecError, match="contrib non-free"):
        synthesize_mbrola(hours=0.01, out_dir=tmp_path, sample_rate=16000, progress=False, **env)


def test_failing_espeak_is_reported(tts_env, tmp_path):
    broken = tmp_path / "broken-espeak"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    env = dict(tts_env, espeak=str(broken))
    with pytest.raises(HificodecError, match="espeak-ng failed on 24 of 24"):
        synthesize_mbrola(hours=0.01, out_dir=tmp_path, sample_rate=16000, progress=False, **env)
