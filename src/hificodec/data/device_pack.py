"""Device packs: a slice of a training corpus small enough to travel to a borrowed GPU machine.

A pack is a folder of Ogg Opus streams (`stream-NN.opus`, each many clips end to end) and
`index.json` (the sample rate, each stream's length, and each clip's stream, offset, length and
speaker). Opus at ~24 kbps keeps 16 kHz speech near-transparent at a tenth of FLAC's size, and the
GPU image reads it through a carried soundfile wheel (libsndfile with Opus). The reader decodes the
streams in parallel into one int16 array, which `DevicePool` then holds on the GPU.

Slices: the training entries are dealt per speaker into `slices` disjoint parts, so successive legs
(slice = leg mod slices) together cover the whole training split; a speaker with fewer files than
there are slices contributes one of its files to every slice, so every speaker is in every pack.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..errors import AudioError, HificodecError
from ..files import atomic_directory
from .manifest import ManifestEntry

INDEX_FILE = "index.json"
PACK_VERSION = 1
# libsndfile maps its compression level linearly onto the Opus bitrate: 0 -> 256 kbps, 1 -> 6 kbps
_OPUS_MAX_BPS, _OPUS_MIN_BPS = 256_000, 6_000


@dataclass
class PackAudio:
    """A decoded pack: all clips end to end as int16, and where each one starts and how long it is."""

    audio: np.ndarray  # int16 [total samples]
    starts: np.ndarray  # int64 [clips]
    lengths: np.ndarray  # int64 [clips]
    speakers: list[str]  # per clip
    sample_rate: int

    @property
    def seconds(self) -> float:
        return float(self.lengths.sum()) / self.sample_rate


def deal_slices(entries: Sequence[ManifestEntry], slices: int, seed: int = 0) -> list[list[ManifestEntry]]:
    """Deal entries into `slices` parts, speaker by speaker (see the module docstring)."""
    if slices < 1:
        raise HificodecError(f"slices must be >= 1, got {slices}")
    by_speaker: dict[str, list[ManifestEntry]] = defaultdict(list)
    for e in entries:
        by_speaker[e.speaker or e.path].append(e)
    parts: list[list[ManifestEntry]] = [[] for _ in range(slices)]
    for n, speaker in enumerate(sorted(by_speaker)):
        files = sorted(by_speaker[speaker], key=lambda e: e.path)
        random.Random(f"{seed}:{speaker}").shuffle(files)
        if len(files) < slices:
            for k in range(slices):
                parts[k].append(files[k % len(files)])
        else:
            for i, e in enumerate(files):
                parts[(i + n) % slices].append(e)
    return parts


def write_device_pack(
    entries: Sequence[ManifestEntry], out_dir: str | os.PathLike, *, sample_rate: int, kbps: float = 24.0,
    streams: int = 16, max_mib: float | None = None, progress: bool = False,
) -> dict:
    """Encode `entries` (resampled to `sample_rate`, mono) into a pack folder; returns its index.

    With `max_mib`, clips of the best-served speakers are left out until the streams fit.
    """
    import soundfile as sf

    if "OPUS" not in sf.available_subtypes("OGG"):
        raise HificodecError("this libsndfile cannot write Ogg Opus (soundfile >= 0.12 with libsndfile >= 1.2 can)")
    clips: list[tuple[str, np.ndarray]] = []
    for e in _progress(entries, progress, "reading"):
        audio, _ = load_audio(e.path, sample_rate, mono=True)
        pcm = np.round(np.clip(audio[0], -1.0, 1.0) * 32767).astype(np.int16)
        if pcm.size:
            clips.append((e.speaker or e.path, pcm))
    if not clips:
        raise HificodecError("no audio to pack")
    level = (_OPUS_MAX_BPS - kbps * 1000) / (_OPUS_MAX_BPS - _OPUS_MIN_BPS)
    if not 0.0 <= level <= 1.0:
        raise HificodecError(f"Opus bitrate {kbps} kbps is outside 6..256")
    budget = None if max_mib is None else max_mib * 2**20
    if budget is not None:
        clips = _fit(clips, budget, kbps * 1000 / 8 / sample_rate)
    with atomic_directory(out_dir) as tmp:
        while True:
            index = _write_streams(clips, tmp, sample_rate, level, streams)
            size = sum((tmp / s["file"]).stat().st_size for s in index["streams"])
            if budget is None or size <= budget:
                break
            # VBR ran over the estimate: cut by the measured bytes per sample and write again
            clips = _fit(clips, 0.97 * budget, size / sum(c.size for _, c in clips))
            for s in index["streams"]:
                (tmp / s["file"]).unlink()
        index["bytes"] = size
        (tmp / INDEX_FILE).write_text(json.dumps(index), encoding="utf-8")
    return index


def _fit(clips: list[tuple[str, np.ndarray]], budget: float, per_sample: float) -> list[tuple[str, np.ndarray]]:
    """Leave out clips, always from the speaker with the most audio, until the estimate fits `budget`."""
    total = sum(c.size for _, c in clips)
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i, (speaker, _) in enumerate(clips):
        by_speaker[speaker].append(i)
    held = {s: sum(clips[i][1].size for i in idx) for s, idx in by_speaker.items()}
    dropped: set[int] = set()
    while total * per_sample > budget:
        speaker = max(held, key=lambda s: held[s])
        if len(by_speaker[speaker]) <= 1:
            raise HificodecError(f"the pack cannot fit {budget / 2**20:.1f} MiB with one clip per speaker")
        i = by_speaker[speaker].pop()
        dropped.add(i)
        held[speaker] -= clips[i][1].size
        total -= clips[i][1].size
    return [c for i, c in enumerate(clips) if i not in dropped]


def _write_streams(
    clips: list[tuple[str, np.ndarray]], folder: Path, sample_rate: int, level: float, streams: int
) -> dict:
    total = sum(c.size for _, c in clips)
    per_stream = math.ceil(total / max(1, streams))
    index: dict = {"version": PACK_VERSION, "sample_rate": sample_rate, "streams": [], "clips": []}
    groups: list[list[np.ndarray]] = [[]]
    filled = 0
    for speaker, pcm in clips:
        if filled >= per_stream:
            groups.append([])
            filled = 0
        index["clips"].append([len(groups) - 1, filled, int(pcm.size), speaker])
        groups[-1].append(pcm)
        filled += pcm.size
    jobs = [(str(folder / f"stream-{i:02d}.opus"), np.concatenate(g), sample_rate, level) for i, g in enumerate(groups)]
    with ProcessPoolExecutor(min(len(jobs), os.cpu_count() or 1)) as pool:
        list(pool.map(_encode_stream, jobs))
    index["streams"] = [{"file": Path(j[0]).name, "samples": int(j[1].size)} for j in jobs]
    index["seconds"] = total / sample_rate
    return index


def _encode_stream(job: tuple[str, np.ndarray, int, float]) -> None:
    import soundfile as sf

    path, data, sample_rate, level = job
    sf.write(path, data, sample_rate, format="OGG", subtype="OPUS", compression_level=level)


def read_device_pack(folder: str | os.PathLike, workers: int | None = None) -> PackAudio:
    """Decode every stream of a pack (in parallel processes) into one int16 array."""
    root = Path(folder)
    try:
        index = json.loads((root / INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise HificodecError(f"{root}: not a device pack ({e})") from None
    if index.get("version") != PACK_VERSION:
        raise HificodecError(f"{root}: pack version {index.get('version')}, this hificodec reads {PACK_VERSION}")
    files = [str(root / s["file"]) for s in index["streams"]]
    n = workers or min(len(files), os.cpu_count() or 1)
    if n > 1:
        with ProcessPoolExecutor(n) as pool:
            decoded = list(pool.map(_decode_stream, files))
    else:
        decoded = [_decode_stream(f) for f in files]
    offsets = np.cumsum([0] + [d.size for d in decoded])
    for s, d in zip(index["streams"], decoded):
        if d.size != s["samples"]:
            raise AudioError(f"{root / s['file']}: decoded {d.size} samples, the index says {s['samples']}")
    clips = index["clips"]
    return PackAudio(
        audio=np.concatenate(decoded),
        starts=np.array([offsets[c[0]] + c[1] for c in clips], dtype=np.int64),
        lengths=np.array([c[2] for c in clips], dtype=np.int64),
        speakers=[c[3] for c in clips],
        sample_rate=int(index["sample_rate"]),
    )


def _decode_stream(path: str) -> np.ndarray:
    import soundfile as sf

    try:
        data, _ = sf.read(path, dtype="int16", always_2d=True)
    except Exception as e:  # soundfile raises several types
        raise AudioError(f"{path}: cannot decode ({e})") from None
    return np.ascontiguousarray(data[:, 0])


def _progress(items: Sequence, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, disable=not enabled, unit="file")
