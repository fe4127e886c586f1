"""Audio I/O shared by the CLI, datasets and evaluation: soundfile to read/write, soxr to resample.

Every reader returns float32 arrays shaped [channels, samples]; bad input raises `AudioError` with
the file name, never substitutes data. soundfile and soxr are imported where they are used: importing
hificodec (and training from a device pack) must work on images that have neither.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .errors import AudioError, HificodecError
from .files import atomic_output


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """Return (sample_rate, channels, frames) without decoding the audio."""
    p = _check_file(path)
    import soundfile as sf

    try:
        info = sf.info(str(p))
    except Exception as e:  # soundfile raises several types (LibsndfileError, RuntimeError)
        raise AudioError(f"{p}: not a readable audio file ({_short(e)})") from None
    return int(info.samplerate), int(info.channels), int(info.frames)


def declared_frames(path: str | os.PathLike) -> int | None:
    """Frames the file's header announces, where libsndfile reports a shorter data chunk than declared
    (a WAV cut short: `sf.info` then gives the frames actually present); None when nothing is amiss."""
    import soundfile as sf

    try:
        log = sf.info(str(path)).extra_info
    except Exception:  # unreadable files are reported by audio_info/reading
        return None
    data = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", log, re.MULTILINE)
    align = re.search(r"Block Align\s*:\s*(\d+)", log)
    if not (data and align) or int(align.group(1)) <= 0:
        return None
    return int(data.group(1)) // int(align.group(1))


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    mono: bool = False,
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 [channels, samples], optionally resampled and downmixed.

    Returns (audio, sample_rate). Raises AudioError for a missing/unreadable/empty file or
    non-finite samples.
    """
    p = _check_file(path)
    import soundfile as sf

    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"{p}: not a readable audio file ({_short(e)})") from None
    audio = np.ascontiguousarray(data.T)
    if audio.shape[1] == 0:
        raise AudioError(f"{p}: the file holds no audio samples")
    check_finite(audio, str(p))
    if mono and audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
    if sample_rate is not None and sample_rate != sr:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return audio, int(sr)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample [channels, samples] (or [samples]) float audio with soxr (high quality)."""
    if sr_in == sr_out:
        return audio
    import soxr

    if audio.ndim == 1:
        return soxr.resample(audio, sr_in, sr_out, quality="HQ").astype(np.float32)
    out = soxr.resample(np.ascontiguousarray(audio.T), sr_in, sr_out, quality="HQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1, audio.shape[0]).T)


def check_finite(audio: np.ndarray, name: str) -> None:
    if not np.isfinite(audio).all():
        raise AudioError(f"{name}: the audio holds NaN or infinite samples")


def save_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    """Write [channels, samples] or [samples] audio atomically (temp file in the same folder, rename)."""
    p = Path(path)
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    fmt = _format_for(p)
    import soundfile as sf

    with atomic_output(p) as tmp:
        sf.write(tmp, np.clip(arr.T, -1.0, 1.0), sample_rate, format=fmt, subtype=subtype)


_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}


def _format_for(p: Path) -> str:
    fmt = _FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise HificodecError(f"{p}: unsupported output extension (use one of {', '.join(_FORMATS)})")
    return fmt


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, expected an audio file")
    return p


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
