"""Synthetic speech from espeak-ng with MBROLA voices, read from Debian fortune texts.

Extra variety for training only (never valid/test): MBROLA has no energy above 8 kHz (16 kHz voices)
and a flat melody, so it must never be the only data. Each utterance draws a voice, a rate
(130-200 words/min), a pitch (30-70) and 1-3 consecutive sentences from that voice's language, all
from a generator seeded by `seed`, so a rerun makes the same utterances and skips finished files.

Needs `espeak-ng`, `mbrola`, some `mbrola-XX` voices (Debian contrib / non-free) and `fortunes*`
texts; `MBROLA_SETUP` says how to install them.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hificodec.audio import audio_info, load_audio, save_audio
from hificodec.data.manifest import ManifestEntry
from hificodec.errors import AudioError, HificodecError

# voice -> (language, fortunes subfolder; "" = the English files at the top level)
MBROLA_VOICES: dict[str, tuple[str, str]] = {
    "us1": ("en", ""), "us2": ("en", ""), "us3": ("en", ""), "en1": ("en", ""),
    "de1": ("de", "de"), "de2": ("de", "de"), "it3": ("it", "it"), "it4": ("it", "it"),
    "es1": ("es", "es"), "es2": ("es", "es"), "cz2": ("cs", "cs"), "pl1": ("pl", "pl"),
}
MBROLA_SETUP = (
    "add 'Components: main contrib non-free' to the apt sources (e.g. /etc/apt/sources.list.d/), run "
    "`apt-get update`, then `apt-get install espeak-ng mbrola "
    + " ".join(f"mbrola-{v}" for v in MBROLA_VOICES)
    + " fortunes fortunes-de fortunes-it fortunes-es fortunes-cs fortunes-pl`"
)
MBROLA_LICENSE = "MBROLA database licence (non-commercial; see /usr/share/doc/mbrola-{voice}/copyright)"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_ALLOWED = re.compile(r"^[^\W\d_][\w\s,.;:!?'\"()\-]*$")


@dataclass(frozen=True)
class SynthJob:
    index: int
    voice: str
    language: str
    rate: int
    pitch: int
    text: str
    dst: str
    sample_rate: int
    espeak: str


def fortune_sentences(folder: Path, min_chars: int = 25, max_chars: int = 200) -> list[str]:
    """Clean sentences from the fortune files directly in `folder` (no chat logs, code or ASCII art)."""
    out: list[str] = []
    if not folder.is_dir():
        return out
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.suffix in (".dat", ".u8") or f.is_symlink():
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        for cookie in text.split("\n%\n"):
            lines = [ln.strip() for ln in cookie.splitlines()]
            # attribution lines ("-- Author") and indented blocks are not prose
            lines = [ln for ln in lines if ln and not ln.startswith(("--", "#", ">", "|"))]
            for s in _SENTENCE_END.split(" ".join(lines)):
                s = " ".join(s.split())
                letters = sum(c.isalpha() for c in s)
                if (min_chars <= len(s) <= max_chars and "\ufffd" not in s and _ALLOWED.match(s)
                        and letters >= 0.75 * len(s) and s[-1] in ".!?"):
                    out.append(s)
    return sorted(set(out))


def available_voices(mbrola_dir: Path, fortunes_dir: Path) -> dict[str, list[str]]:
    """voice -> its language's sentences, for installed voices whose language has texts."""
    texts: dict[str, list[str]] = {}
    voices = {}
    for voice, (_lang, sub) in MBROLA_VOICES.items():
        if not (mbrola_dir / voice / voice).is_file():
            continue
        if sub not in texts:
            texts[sub] = fortune_sentences(fortunes_dir / sub if sub else fortunes_dir)
        if texts[sub]:
            voices[voice] = texts[sub]
    return voices


def synth_one(job: SynthJob) -> float:
    """Synthesise one utterance to FLAC; returns its duration (0.0 if espeak-ng produced nothing)."""
    if os.path.exists(job.dst):
        sr, _, frames = audio_info(job.dst)
        return frames / sr
    with tempfile.TemporaryDirectory(prefix="hificodec-tts-") as tmp:
        wav = os.path.join(tmp, "out.wav")
        cmd = [job.espeak, "-v", f"mb-{job.voice}", "-s", str(job.rate), "-p", str(job.pitch), "-w", wav]
        # text on stdin: a line starting with "-" would be taken as an option
        proc = subprocess.run(cmd, input=job.text, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not os.path.exists(wav):
            return 0.0
        try:
            audio, _ = load_audio(wav, sample_rate=job.sample_rate, mono=True)
        except AudioError:
            return 0.0
    if float(np.abs(audio).max()) < 1e-3:
        return 0.0
    os.makedirs(os.path.dirname(job.dst), exist_ok=True)
    save_audio(job.dst, audio, job.sample_rate, subtype="PCM_16")
    return audio.shape[1] / job.sample_rate


def synthesize_mbrola(
    hours: float,
    out_dir: Path,
    sample_rate: int,
    seed: int = 0,
    jobs: int = 1,
    progress: bool = True,
    mbrola_dir: Path = Path("/usr/share/mbrola"),
    fortunes_dir: Path = Path("/usr/share/games/fortunes"),
    espeak: str | None = None,
) -> list[ManifestEntry]:
    """Make about `hours` of MBROLA speech under out_dir/audio/mbrola/<voice>/; entries marked synthetic."""
    espeak = espeak or shutil.which("espeak-ng")
    if espeak is None:
        raise HificodecError(f"--synthetic-hours needs espeak-ng and MBROLA voices: {MBROLA_SETUP}")
    voices = available_voices(Path(mbrola_dir), Path(fortunes_dir))
    if not voices:
        raise HificodecError(f"no MBROLA voice with fortune texts is installed: {MBROLA_SETUP}")
    rng = random.Random(seed)
    names = sorted(voices)
    base = Path(out_dir) / "audio" / "mbrola"

    def plan() -> Iterator[SynthJob]:
        i = 0
        while True:
            voice = rng.choice(names)
            sents = voices[voice]
            start = rng.randrange(len(sents))
            text = " ".join(sents[start:start + rng.randint(1, 3)])
            yield SynthJob(
                index=i, voice=voice, language=MBROLA_VOICES[voice][0], rate=rng.randint(130, 200),
                pitch=rng.randint(30, 70), text=text, dst=str(base / voice / f"{i:06d}.flac"),
                sample_rate=sample_rate, espeak=espeak,
            )
            i += 1

    target = hours * 3600
    entries: list[ManifestEntry] = []
    total = 0.0
    failures = 0
    batch = max(8, 4 * jobs)
    pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None
    bar = tqdm(total=round(target), desc="mbrola", unit="s", disable=not progress, mininterval=2.0)
    planned = plan()
    try:
        while total < target:
            todo = [next(planned) for _ in range(batch)]
            secs = list(pool.map(synth_one, todo) if pool else map(synth_one, todo))
            for job, s in zip(todo, secs):
                if total >= target:  # made in the last batch but not needed: keep runs reproducible
                    Path(job.dst).unlink(missing_ok=True)
                    continue
                if s <= 0:
                    failures += 1
                    continue
                total += s
                bar.update(round(s))
                entries.append(ManifestEntry(
                    path=job.dst, duration=round(s, 4), speaker=f"mbrola-{job.voice}", language=job.language,
                    source="mbrola", license=MBROLA_LICENSE.format(voice=job.voice), synthetic=True,
                    sample_rate=sample_rate, channels=1,
                    text=job.text, extra={"voice": f"mb-{job.voice}", "rate": job.rate, "pitch": job.pitch},
                ))
            if failures > 20 and failures > len(entries):
                raise HificodecError(
                    f"espeak-ng failed on {failures} of {failures + len(entries)} utterances "
                    f"(try `{espeak} -v mb-{names[0]} 'hello'`): {MBROLA_SETUP}"
                )
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    return entries
