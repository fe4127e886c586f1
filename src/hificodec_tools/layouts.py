"""Manifests for corpora already on disk: LibriTTS, VCTK, any folder of audio, or a folder holding several.

    scan = folder_manifest("/data")      # every LibriTTS and VCTK tree under /data, each with its layout
    scan.entries, scan.trees, scan.left_out, scan.notes

LibriTTS (and LibriTTS-R): `<subset>/<speaker>/<chapter>/*.wav` with subsets train-clean-100,
train-clean-360, train-other-500, dev-*, test-*; the split comes from the subset name (dev -> valid),
and LibriTTS's dev/test speakers are already disjoint from train. The transcript is the
`<utterance>.normalized.txt` next to the audio.

VCTK: `wav48*/pXXX/*.wav|flac` (0.80 `wav48/`, 0.92 `wav48_silence_trimmed/` with _mic1/_mic2 files;
only mic1 is kept, mic2 is the same utterance on another microphone). Split: the 8 speakers held out
in the audio super-resolution literature (Kuleshov et al. 2017, NU-Wave) are test, the 4 speakers
before them in sorted order are valid, the rest train. The transcript is `txt/pXXX/pXXX_NNN.txt`.

A folder may hold several trees (LibriTTS next to VCTK, LibriTTS next to LibriTTS-R): each is read with
its own layout. Audio files that no tree takes are listed in `left_out` with the reason, never dropped
silently. Trees without standard held-out speakers get them from `hificodec_tools.holdout`.

Durations come from the file headers (soundfile info), cached per folder under
$XDG_CACHE_HOME/hificodec/durations (keyed by path, size and mtime) so rescans are fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from hificodec.audio import audio_info
from hificodec.data.manifest import ManifestEntry, scan_audio
from hificodec.errors import AudioError, HificodecError
from hificodec.files import atomic_output

LAYOUTS = ("libritts", "vctk", "folder")
LIBRITTS_SUBSET = re.compile(r"^(train|dev|test)-(clean|other)(-\d+)?$")
LIBRITTS_SPLIT = {"train": "train", "dev": "valid", "test": "test"}
VCTK_AUDIO_DIR = re.compile(r"^wav48")
VCTK_MIC = re.compile(r"_mic[12]$")
VCTK_TEST_SPEAKERS = ("p360", "p361", "p362", "p363", "p364", "p374", "p376", "s5")
VCTK_VALID_COUNT = 4


@dataclass
class Tree:
    """One corpus tree of a scanned folder and its entries (the same objects as in `FolderScan.entries`)."""

    layout: str  # libritts / vctk / folder
    root: Path  # the corpus folder: the parent of LibriTTS's subsets or of VCTK's wav48*, or the folder
    entries: list[ManifestEntry] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.layout} tree {self.root}"


@dataclass
class FolderScan:
    entries: list[ManifestEntry]  # absolute paths, every tree
    trees: list[Tree]
    left_out: list[str]  # audio files no tree takes: how many, an example (a warning: maybe not intended)
    notes: list[str]  # files a layout leaves out by design (VCTK mic2), how many files lack a transcript

    @property
    def layout(self) -> str:
        """The layouts found, e.g. `libritts+vctk`."""
        return "+".join(dict.fromkeys(t.layout for t in self.trees))


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
    """The layouts under `root` (`libritts`, `vctk`, `libritts+vctk`), or `folder` when none is recognised."""
    r = Path(root)
    found = [name for name, trees in (("libritts", _libritts_trees(r)), ("vctk", _vctk_trees(r))) if trees]
    return "+".join(found) or "folder"


def folder_manifest(
    root: str | os.PathLike,
    layout: str = "auto",
    progress: bool = False,
    cache_file: Path | None = None,
) -> FolderScan:
    """Entries for every audio file of a corpus folder (each recognised tree with its layout)."""
    if not Path(root).is_dir():
        raise HificodecError(f"{root}: not a folder")
    r = Path(os.path.abspath(root))  # one spelling for scan_audio's paths and the tree folders ("." included)
    if layout not in ("auto", *LAYOUTS):
        raise HificodecError(f"unknown layout '{layout}' (use auto, {', '.join(LAYOUTS)})")
    files = scan_audio(r)
    taken: list[tuple[Tree, str, dict]] = []  # (tree, path, fields)
    by_design: list[str] = []  # files a layout leaves out on purpose, one line per reason
    placed: set[str] = set()
    trees: list[Tree] = []
    if layout in ("auto", "libritts"):
        for tree_root, subsets in _libritts_trees(r):
            trees.append(Tree("libritts", tree_root))
            taken += [(trees[-1], p, f) for p, f in _libritts_files(subsets, files)]
        if layout == "libritts" and not trees:
            raise HificodecError(f"{r}: no LibriTTS subset folders (train-clean-100, dev-clean, ...) found")
    if layout in ("auto", "vctk"):
        vctk = _vctk_trees(r)
        for tree_root, audio_dirs in vctk:
            trees.append(Tree("vctk", tree_root))
            described, skipped = _vctk_files(tree_root, audio_dirs, files)
            taken += [(trees[-1], p, f) for p, f in described]
            for why, paths in skipped.items():
                by_design.append(f"{trees[-1].name}: left out {len(paths)} {why}")
                placed.update(paths)
        if layout == "vctk" and not vctk:
            raise HificodecError(f"{r}: no VCTK audio folder (wav48/ or wav48_silence_trimmed/) found")
    if not trees:  # a plain folder (or --layout folder): every file, no speakers
        trees = [Tree("folder", r)]
        taken = [(trees[0], p, {}) for p in files]
    if not taken:
        kinds = " and ".join(dict.fromkeys(t.layout for t in trees))
        where = "" if kinds == "folder" else f" in its {kinds} tree(s)"
        raise HificodecError(f"{r}: no audio files found{where}")
    placed.update(p for _, p, _ in taken)
    outside = [p for p in files if p not in placed]
    left_out = [
        f"{len(outside)} audio file(s) outside the {' and '.join(dict.fromkeys(t.layout for t in trees))} speaker "
        f"folders, e.g. {outside[0]} (--layout folder takes every file)"
    ] if outside else []  # fmt: skip

    cache = DurationCache(r, cache_file)
    entries = []
    unreadable = []
    try:
        for tree, path, fields in tqdm(taken, desc="durations", unit="file", disable=not progress, mininterval=2.0):
            try:
                sr, ch, frames = cache.info(path)
            except AudioError as e:
                unreadable.append(str(e))
                continue
            entry = ManifestEntry(path=path, duration=round(frames / sr, 4), sample_rate=sr, channels=ch, **fields)
            tree.entries.append(entry)
            entries.append(entry)
    finally:
        cache.save()
    if unreadable:  # never silently: name the first bad file
        raise HificodecError(f"{len(unreadable)} unreadable audio file(s), e.g. {unreadable[0]}")
    notes = by_design
    for tree in trees:
        missing = sum(e.text is None for e in tree.entries)
        if tree.layout != "folder" and missing:
            notes.append(f"{tree.name}: {missing} of {len(tree.entries)} files have no transcript")
    return FolderScan(entries, [t for t in trees if t.entries], left_out, notes)


# ---------------------------------------------------------------- layouts


def _libritts_subsets(root: Path) -> list[Path]:
    """Subset folders at root, one and two levels down."""
    found = []
    for cand in [root, *_subdirs(root), *(d for s in _subdirs(root) for d in _subdirs(s))]:
        if LIBRITTS_SUBSET.match(cand.name):
            found.append(cand)
    return sorted(set(found))


def _libritts_trees(root: Path) -> list[tuple[Path, list[Path]]]:
    """(corpus folder, its subset folders): LibriTTS and LibriTTS-R side by side are two trees."""
    by_parent: dict[Path, list[Path]] = defaultdict(list)
    for subset in _libritts_subsets(root):
        by_parent[subset.parent].append(subset)
    return sorted(by_parent.items())


def _under(folder: Path, files: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(path, its parts below `folder`) for the files under `folder` (`files` from one scan_audio)."""
    prefix = os.path.join(str(folder), "")
    return [(p, tuple(p[len(prefix):].split(os.sep))) for p in files if p.startswith(prefix)]


def _libritts_files(subsets: list[Path], files: list[str]) -> list[tuple[str, dict]]:
    out = []
    for subset in subsets:
        split = LIBRITTS_SPLIT[subset.name.split("-")[0]]
        for path, rel in _under(subset, files):
            if len(rel) != 3:  # not speaker/chapter/file: left out (and reported)
                continue
            out.append((path, {
                "split": split, "speaker": f"libritts-{rel[0]}", "language": "en", "source": "libritts",
                "license": "CC-BY-4.0", "text": _read_text(os.path.splitext(path)[0] + ".normalized.txt"),
                "extra": {"subset": subset.name, "chapter": rel[1]},
            }))
    return out


def _vctk_audio_dirs(root: Path) -> list[Path]:
    return sorted(
        d for d in [*_subdirs(root), *(x for s in _subdirs(root) for x in _subdirs(s))]
        if VCTK_AUDIO_DIR.match(d.name) and any(p.name.startswith("p") for p in _subdirs(d))
    )


def _vctk_trees(root: Path) -> list[tuple[Path, list[Path]]]:
    """(corpus folder, its wav48* folders)."""
    by_parent: dict[Path, list[Path]] = defaultdict(list)
    for d in _vctk_audio_dirs(root):
        by_parent[d.parent].append(d)
    return sorted(by_parent.items())


def vctk_split_of(speakers: list[str]) -> dict[str, str]:
    """Standard speaker-held-out split: fixed test speakers, the last 4 other speakers are valid."""
    rest = sorted(s for s in speakers if s not in VCTK_TEST_SPEAKERS)
    valid = set(rest[-VCTK_VALID_COUNT:]) if len(rest) > VCTK_VALID_COUNT else set()
    return {s: "test" if s in VCTK_TEST_SPEAKERS else "valid" if s in valid else "train" for s in speakers}


def _vctk_files(
    root: Path, audio_dirs: list[Path], files: list[str]
) -> tuple[list[tuple[str, dict]], dict[str, list[str]]]:
    """Described files, and the ones left out by design (why -> paths)."""
    audio_dir = audio_dirs[-1]  # prefer wav48_silence_trimmed (0.92) over wav48 (0.80) when both exist
    skipped: dict[str, list[str]] = defaultdict(list)
    for older in audio_dirs[:-1]:
        skipped[f"files in {older.name} (another VCTK release of the recordings in {audio_dir.name})"] += [
            p for p, _ in _under(older, files)
        ]
    kept = []
    for path, rel in _under(audio_dir, files):
        if len(rel) != 2:  # not speaker/file: reported as outside
            continue
        if "_mic2." in rel[1]:
            skipped["_mic2 files (the same utterances as _mic1, on a second microphone)"].append(path)
        else:
            kept.append((path, rel[0]))
    split_of = vctk_split_of(sorted({speaker for _, speaker in kept}))
    described = [
        (p, {"split": split_of[speaker], "speaker": f"vctk-{speaker}", "language": "en", "source": "vctk",
             "license": "CC-BY-4.0", "text": _read_text(root / "txt" / speaker / f"{_vctk_utterance(p)}.txt")})
        for p, speaker in kept
    ]  # fmt: skip
    return described, skipped


def _vctk_utterance(path: str) -> str:
    return VCTK_MIC.sub("", Path(path).name.split(".")[0])


def _read_text(path: str | Path) -> str | None:
    """A transcript file's text, or None when there is none (VCTK lacks some, e.g. p315's)."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def _subdirs(d: Path) -> list[Path]:
    try:
        return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
