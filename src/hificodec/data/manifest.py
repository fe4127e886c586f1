"""The manifest format every part of hificodec reads (trainer, tokenize, eval, corpus builder).

A manifest is a JSON-lines file (`*.jsonl`): one object per utterance. Only `path` is required;
relative paths are relative to the manifest's folder. Known fields:

    path       audio file                       duration   seconds (float)
    split      train / valid / test             speaker    speaker or voice id
    language   ISO-639-1 code                   source     where it came from (e.g. Debian package)
    license    licence of the audio             synthetic  true for TTS-generated speech
    text       the transcript, where the corpus has one (LibriTTS normalized text, VCTK txt/)
    sample_rate, channels                       of the file as stored (readers may trust them to
                                                skip a header read); a converted corpus keeps the
                                                source's values in `orig_sample_rate` / `orig_channels`

Unknown fields are kept (`extra`) and written back unchanged.

`read_entries(x)` accepts a manifest, a plain file list (`*.txt`/`*.lst`, one path per line), a
folder (scanned recursively for audio), or a single audio file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import HificodecError
from ..files import atomic_output

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au")


@dataclass
class ManifestEntry:
    path: str
    duration: float | None = None
    split: str | None = None
    speaker: str | None = None
    language: str | None = None
    source: str | None = None
    license: str | None = None
    synthetic: bool | None = None
    sample_rate: int | None = None
    channels: int | None = None
    text: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self, relative_to: Path | None = None) -> str:
        d = {k: v for k, v in asdict(self).items() if k != "extra" and v is not None}
        if relative_to is not None:
            try:
                d["path"] = os.path.relpath(self.path, relative_to)
            except ValueError:  # different drive on Windows
                pass
        d.update(self.extra)
        return json.dumps(d, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict, base: Path | None = None) -> ManifestEntry:
        if "path" not in d:
            raise HificodecError(f"manifest entry without 'path': {d}")
        known = {f.name for f in fields(cls)} - {"extra"}
        kw = {k: v for k, v in d.items() if k in known}
        extra = {k: v for k, v in d.items() if k not in known}
        path = Path(kw["path"])
        if base is not None and not path.is_absolute():
            path = base / path
        kw["path"] = str(path)
        return cls(**kw, extra=extra)


def read_manifest(path: str | os.PathLike) -> list[ManifestEntry]:
    p = Path(path)
    entries = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise HificodecError(f"{p}: cannot read manifest ({e.strerror})") from None
    for i, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise HificodecError(f"{p}:{i}: not valid JSON ({e.msg})") from None
        entries.append(ManifestEntry.from_dict(d, base=p.parent))
    return entries


def write_manifest(path: str | os.PathLike, entries: Iterable[ManifestEntry]) -> None:
    """Write atomically; paths are stored relative to the manifest's folder."""
    p = Path(path)
    base = p.parent.resolve()
    with atomic_output(p) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for e in entries:
            f.write(ManifestEntry(**{**asdict(e), "path": str(Path(e.path).resolve())}).to_json(base))
            f.write("\n")


def scan_audio(folder: str | os.PathLike) -> list[str]:
    """All audio files under a folder, sorted (hidden files and partial writes skipped)."""
    out = []
    for root, dirs, files in os.walk(os.fspath(folder)):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS):
                out.append(os.path.join(root, name))
    return out


def read_entries(source: str | os.PathLike, split: str | None = None) -> list[ManifestEntry]:
    """Entries from a manifest, a file list, a folder, or one audio file; optionally one split only."""
    p = Path(source)
    if not p.exists():
        raise HificodecError(f"{p}: no such file or folder")
    if p.is_dir():
        entries = [ManifestEntry(path=f) for f in scan_audio(p)]
        if not entries:
            raise HificodecError(f"{p}: no audio files found (looked for {', '.join(AUDIO_EXTENSIONS)})")
    elif p.suffix in (".jsonl", ".json"):
        entries = read_manifest(p)
    elif p.suffix in (".txt", ".lst", ".list", ".scp"):
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
        entries = [
            ManifestEntry.from_dict({"path": ln}, base=p.parent) for ln in lines if ln and not ln.startswith("#")
        ]
    elif p.suffix.lower() in AUDIO_EXTENSIONS:
        entries = [ManifestEntry(path=str(p))]
    else:
        raise HificodecError(f"{p}: expected a folder, a .jsonl manifest, a .txt file list or an audio file")
    if split is not None:
        entries = [e for e in entries if e.split == split]
        if not entries:
            raise HificodecError(f"{p}: no entries with split '{split}'")
    return entries
