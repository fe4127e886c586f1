"""Listening clips kept in an eval folder for the HTML report (`listening.json` + `listen/`).

For each file of `EvalReport.listen_files`: the reference and every system's output, the output
shifted by its measured delay and cut to the reference's length (so that switching between systems
lands on the same syllable), compressed so the folder stays small: Opus 64 kbps mono in WebM
(transparent for speech; WebM plays in every current browser) through ffmpeg, or FLAC written by
soundfile when ffmpeg or its libopus encoder is missing. Each clip gets a small spectrogram PNG.
`hificodec report` reads only what is written here, plus summary.json and results.csv.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import HificodecError
from ..files import atomic_output
from .baselines import _ffmpeg_capabilities, resolve_ffmpeg
from .runner import EvalReport

LISTENING_JSON = "listening.json"
LISTENING_FORMAT = "hificodec-eval-listening/1"
CLIP_DIR = "listen"
OPUS_KBPS = 64
REFERENCE = "reference"


def clip_codec(ffmpeg: str | None = None) -> tuple[str | None, str]:
    """(ffmpeg path or None, description) of how clips will be compressed here."""
    path = resolve_ffmpeg(ffmpeg)
    if path is not None:
        try:
            encoders, muxers = _ffmpeg_capabilities(path)
        except (OSError, subprocess.SubprocessError):
            encoders, muxers = frozenset(), frozenset()
        if "libopus" in encoders and "webm" in muxers:
            return path, f"Opus {OPUS_KBPS} kbps mono (WebM)"
    return None, "FLAC (lossless; no ffmpeg with libopus here)"


def write_listening(
    report: EvalReport, out_dir: str | os.PathLike, ffmpeg: str | None = None, spectrograms: bool = True
) -> list[Path]:
    """Compressed clips (+ spectrograms) of the report's listening files and `listening.json`."""
    out = Path(out_dir)
    ffmpeg_path, codec = clip_codec(ffmpeg)
    delays = {(r["file"], r["system"]): r.get("delay_ms") for r in report.rows}
    written: list[Path] = []
    items = []
    for i, file in enumerate(report.listen_files):
        audios = report.examples[file]
        ref, ref_sr = audios[REFERENCE]
        duration = len(ref) / ref_sr
        folder = Path(CLIP_DIR) / f"{i:02d}_{_safe(Path(file).stem)}"
        (out / folder).mkdir(parents=True, exist_ok=True)
        names: set[str] = set()
        clips = []
        aligned = {
            name: (audio if name == REFERENCE else _compensate(audio, sr, delays.get((file, name)), duration), sr)
            for name, (audio, sr) in audios.items()
        }
        top_hz = max(sr for _, sr in aligned.values()) / 2
        vmax = _spectrum_peak(ref, ref_sr)
        for name, (audio, sr) in aligned.items():
            stem = _unique(_safe(name), names)
            audio_rel = folder / (stem + (".webm" if ffmpeg_path else ".flac"))
            _write_clip(audio, sr, out / audio_rel, ffmpeg_path)
            written.append(out / audio_rel)
            clip = {
                "system": name,
                "audio": audio_rel.as_posix(),
                "bytes": (out / audio_rel).stat().st_size,
                "duration_s": round(len(audio) / sr, 4),
                "spectrogram": None,
            }
            if spectrograms:
                from .plots import spectrogram_thumbnail

                png_rel = folder / (stem + ".png")
                written.append(spectrogram_thumbnail(audio, sr, out / png_rel, top_hz=top_hz, vmax=vmax))
                clip["spectrogram"] = png_rel.as_posix()
            clips.append(clip)
        items.append({"file": file, "duration_s": round(duration, 4), "clips": clips})
    manifest = {"format": LISTENING_FORMAT, "codec": codec, "files": items}
    path = out / LISTENING_JSON
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    written.append(path)
    return written


def _compensate(audio: np.ndarray, sr: int, delay_ms: float | None, duration: float) -> np.ndarray:
    """Undo the measured delay (positive = the output lags) and pad or cut to `duration` seconds."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    shift = int(round((delay_ms or 0.0) * sr / 1000))
    x = x[shift:] if shift > 0 else np.concatenate([np.zeros(-shift, np.float32), x])
    n = int(round(duration * sr))
    return np.pad(x[:n], (0, max(0, n - len(x))))


def _spectrum_peak(audio: np.ndarray, sr: int) -> float:
    from .plots import _log_spectrogram

    return float(_log_spectrogram(audio, sr).max()) if len(audio) else 0.0


def _write_clip(audio: np.ndarray, sr: int, path: Path, ffmpeg: str | None) -> None:
    pcm = np.clip(np.asarray(audio, dtype=np.float32), -1, 1)
    with atomic_output(path) as tmp:
        if ffmpeg is None:
            sf.write(tmp, pcm, sr, format="FLAC", subtype="PCM_16")
            return
        cmd = [ffmpeg, "-v", "error", "-nostdin", "-f", "f32le", "-ar", str(sr), "-ac", "1", "-i", "pipe:0"]
        cmd += ["-c:a", "libopus", "-b:a", f"{OPUS_KBPS}k", "-application", "audio", "-f", "webm", "-y", str(tmp)]
        proc = subprocess.run(cmd, input=pcm.tobytes(), capture_output=True, timeout=600)
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            raise HificodecError(f"ffmpeg could not write {path.name}: {lines[-1] if lines else proc.returncode}")


def _safe(name: str) -> str:
    """A file-name-safe form of a system or file name (they may hold '@', '#', spaces or slashes)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "clip"


def _unique(stem: str, taken: set[str]) -> str:
    out, k = stem, 1
    while out in taken:
        k += 1
        out = f"{stem}_{k}"
    taken.add(out)
    return out
