"""Manifests for corpora already on disk: LibriTTS, VCTK, or any folder of audio.

    entries, layout = folder_manifest("/data/LibriTTS")            # layout: libritts / vctk / folder
    write_folder_manifest("/data/VCTK-Corpus-0.92", "vctk.jsonl")

LibriTTS (and LibriTTS-R): `<subset>/<speaker>/<chapter>/*.wav` with subsets train-clean-100,
train-clean-360, train-other-500, dev-*, test-*; the split comes from the subset name (dev -> valid),
and LibriTTS's dev/test speakers are already disjoint from train.

VCTK: `wav48*/pXXX/*.wav|flac` (0.80 `wav48/`, 0.92 `wav48_silence_trimmed/` with _mic1/_mic2 files;
only mic1 is kept, mic2 is the same utterance on another microphone). Split: the 8 speakers held out
in the audio super-resolution literature (Kuleshov et al. 2017, NU-Wave) are test, the 4 speakers
before them in sorted order are valid, the rest train.

Durations come from the file headers (soundfile info), cached per folder under
$XDG_CACHE_HOME/hificodec/durations (keyed by path, size and mtime) so rescans are fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from hificodec.audio import audio_info
from hificodec.data.manifest import ManifestEntry, scan_audio, write_manifest
from hificodec.errors import AudioError, HificodecError
from hificodec.files import atomic_output

LAYOUTS = ("libritts", "vctk", "folder")
LIBRITTS_SUBSET = re.compile(r"^(train|dev|test)-(clean|other)(-\d+)?$")
VCTK_AUDIO_DIR = re.compile(r"^wav48")
VCTK_TEST_SPEAKERS = ("p360", "p361", "p362", "p363", "p364", "p374", "p376", "s5")
VCTK_VALID_COUNT = 4


class DurationCache:
    """(sample_rate, channels, frames) per file, valid while size and mtime are unchanged."""

    def __init__(self, root: Path, cache_file: Path | None = None):
        self.root = root.resolve()
        if cache_file is None:
            base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
            digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:16]
            cache_file = base / "hificodec" / "durations" / f"{digest}.json"
        self.cache_file = cache_file
        self.data: dict[str, list] = {}
        self.dirty = False
        try:
            self.data = json.loads(cache_file.read_text()).get("files", {})
        except (OSError, ValueError, AttributeError):
            self.data = {}

    def info(self, path: str) -> tuple[int, int, int]:
        st = os.stat(path)
        key = os.path.relpath(path, self.root)
        hit = self.data.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return int(hit[2]), int(hit[3]), int(hit[4])
        sr, ch, frames = audio_info(path)
        self.data[key] = [st.st_size, st.st_mtime_ns, sr, ch, frames]
        self.dirty = True
        return sr, ch, frames

    def save(self) -> None:
        if not self.dirty:
            return
        try:  # a cache that cannot be written only costs time on the next scan
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(self.cache_file) as tmp:
                Path(tmp).write_text(json.dumps({"root": str(self.root), "files": self.data}))
        except (OSError, HificodecError):
            pass
        self.dirty = False


def detect_layout(root: str | os.PathLike) -> str:
    r = Path(root)
    if _libritts_subsets(r):
        return "libritts"
    if _vctk_audio_dirs(r):
        return "vctk"
    return "folder"


def folder_manifest(
    root: str | os.PathLike,
    layout: str = "auto",
    progress: bool = False,
    cache_file: Path | None = None,
) -> tuple[list[ManifestEntry], str]:
    """Entries (absolute paths) for every audio file of a corpus folder, and the layout used."""
    r = Path(root)
    if not r.is_dir():
        raise HificodecError(f"{r}: not a folder")
    if layout == "auto":
        layout = detect_layout(r)
    describe: dict[str, Callable[[Path], list[tuple[str, dict]]]] = {
        "libritts": _libritts_files, "vctk": _vctk_files, "folder": _plain_files,
    }
    if layout not in describe:
        raise HificodecError(f"unknown layout '{layout}' (use auto, {', '.join(LAYOUTS)})")
    files = describe[layout](r)
    if not files:
        raise HificodecError(f"{r}: no audio files found for layout '{layout}'")
    cache = DurationCache(r, cache_file)
    entries = []
    skipped = []
    try:
        for path, fields in tqdm(files, desc="durations", unit="file", disable=not progress, mininterval=2.0):
            try:
                sr, ch, frames = cache.info(path)
            except AudioError as e:
                skipped.append(str(e))
                continue
            entries.append(ManifestEntry(
                path=path, duration=round(frames / sr, 4), sample_rate=sr, channels=ch, **fields
            ))
    finally:
        cache.save()
    if skipped:  # never silently: name the first bad file
        raise HificodecError(f"{len(skipped)} unreadable audio file(s), e.g. {skipped[0]}")
    return entries, layout


def write_folder_manifest(
    root: str | os.PathLike,
    out: str | os.PathLike,
    layout: str = "auto",
    progress: bool = False,
    cache_file: Path | None = None,
) -> tuple[list[ManifestEntry], str]:
    entries, used = folder_manifest(root, layout=layout, progress=progress, cache_file=cache_file)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(out_path, entries)
    return entries, used


# ---------------------------------------------------------------- layouts


def _libritts_subsets(root: Path) -> list[Path]:
    """Subset folders at root, one level down (LibriTTS/) or root itself."""
    found = []
    for cand in [root, *_subdirs(root), *(d for s in _subdirs(root) for d in _subdirs(s))]:
        if LIBRITTS_SUBSET.match(cand.name):
            found.append(cand)
    return sorted(set(found))


def _libritts_files(root: Path) -> list[tuple[str, dict]]:
    subsets = _libritts_subsets(root)
    if not subsets:
        raise HificodecError(f"{root}: no LibriTTS subset folders (train-clean-100, dev-clean, ...) found")
    out = []
    for subset in subsets:
        split = {"train": "train", "dev": "valid", "test": "test"}[subset.name.split("-")[0]]
        for path in scan_audio(subset):
            rel = Path(path).relative_to(subset).parts
            if len(rel) != 3:  # speaker/chapter/file
                continue
            out.append((path, {
                "split": split, "speaker": f"libritts-{rel[0]}", "language": "en", "source": "libritts",
                "license": "CC-BY-4.0", "extra": {"subset": subset.name, "chapter": rel[1]},
            }))
    return out


def _vctk_audio_dirs(root: Path) -> list[Path]:
    return sorted(
        d for d in [*_subdirs(root), *(x for s in _subdirs(root) for x in _subdirs(s))]
        if VCTK_AUDIO_DIR.match(d.name) and any(p.name.startswith("p") for p in _subdirs(d))
    )


def vctk_split_of(speakers: list[str]) -> dict[str, str]:
    """Standard speaker-held-out split: fixed test speakers, the last 4 other speakers are valid."""
    rest = sorted(s for s in speakers if s not in VCTK_TEST_SPEAKERS)
    valid = set(rest[-VCTK_VALID_COUNT:]) if len(rest) > VCTK_VALID_COUNT else set()
    return {s: "test" if s in VCTK_TEST_SPEAKERS else "valid" if s in valid else "train" for s in speakers}


def _vctk_files(root: Path) -> list[tuple[str, dict]]:
    dirs = _vctk_audio_dirs(root)
    if not dirs:
        raise HificodecError(f"{root}: no VCTK audio folder (wav48/ or wav48_silence_trimmed/) found")
    audio_dir = dirs[-1]  # prefer wav48_silence_trimmed (0.92) over wav48 (0.80) when both exist
    files = [p for p in scan_audio(audio_dir) if "_mic2." not in os.path.basename(p)]
    speakers = sorted({Path(p).parent.name for p in files})
    split_of = vctk_split_of(speakers)
    return [
        (p, {"split": split_of[Path(p).parent.name], "speaker": f"vctk-{Path(p).parent.name}",
             "language": "en", "source": "vctk", "license": "CC-BY-4.0"})
        for p in files
    ]


def _plain_files(root: Path) -> list[tuple[str, dict]]:
    return [(p, {}) for p in scan_audio(root)]


def _subdirs(d: Path) -> list[Path]:
    try:
        return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
