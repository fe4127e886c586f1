"""Audio I/O shared by the CLI, datasets and evaluation: soundfile to read/write, soxr to resample.

Every reader returns float32 arrays shaped [channels, samples]; bad input raises `AudioError` with
the file name, never substitutes data. soundfile and soxr are imported where they are used: importing
hificodec (and training from a device pack) must work on images that have neither.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import AudioError, HificodecError


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


class atomic_output:
    """Context manager yielding a temp path next to `path`; renamed onto `path` only on success."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.tmp: str | None = None

    def __enter__(self) -> str:
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise HificodecError(f"{self.path}: output folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise HificodecError(f"{self.path}: output folder {parent} is not writable")
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=PARTIAL_SUFFIX, dir=parent)
        os.close(fd)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is None:
            # mkstemp creates 0600 files; give the result the usual permissions (0666 minus umask).
            os.chmod(self.tmp, 0o666 & ~_umask())
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.unlink(self.tmp)


PARTIAL_SUFFIX = ".part"


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _usual_permissions(folder: Path) -> None:
    """mkdtemp makes 0700 folders and some writers (safetensors) 0600 files: give a finished folder
    what plain mkdir/open would have (0777/0666 minus the umask)."""
    umask = _umask()
    for root, _, files in os.walk(folder):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~umask)


def remove_partial_outputs(folder: str | os.PathLike, names: Iterable[str] | None = None) -> int:
    """Delete the temp files that `atomic_output` leaves when a run is killed (`.NAME.XXXX.part`),
    under `folder` recursively; with `names`, only those belonging to these output names."""
    wanted = set(names) if names is not None else None
    removed = 0
    for root, _, files in os.walk(os.fspath(folder)):
        for f in files:
            if not (f.startswith(".") and f.endswith(PARTIAL_SUFFIX)):
                continue
            if wanted is not None and f[1:].rsplit(".", 2)[0] not in wanted:
                continue
            os.unlink(os.path.join(root, f))
            removed += 1
    return removed


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder next to `path`; on success it replaces `path` whole, on error it is deleted.
    A reader never sees a half-written folder (the old one is swapped out, then removed)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        _usual_permissions(tmp)
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
