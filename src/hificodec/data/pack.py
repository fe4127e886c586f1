"""Pack a balanced subset of a manifest into one tar (FLAC audio + manifest.jsonl) under a size limit.

    pack_manifest("corpus/16k/train.jsonl", "pack16k.tar", max_mib=48)

Picks files so every source, and every speaker within a source, gets about the same amount of audio:
each step takes the next (seeded-shuffled) file of the least-served speaker of the least-served source,
skipping files that no longer fit. FLAC files are stored as they are; other formats are encoded to FLAC
(same rate and channels). The tar holds `manifest.jsonl` first (paths relative to the tar root) and
`audio/<source>/<n>.flac`; it is written atomically, deterministically for a given seed, and never
exceeds the limit. Extract with `tar xf OUT.tar -C DIR` and train on DIR/manifest.jsonl.
"""

from __future__ import annotations

import io
import os
import random
import re
import tarfile
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import soundfile as sf

from ..audio import load_audio
from ..errors import HificodecError
from ..files import atomic_output
from .manifest import ManifestEntry, read_entries

BLOCK = 512
RECORD = 20 * BLOCK  # tarfile pads the archive to a multiple of this
FIXED_OVERHEAD = RECORD + 3 * BLOCK  # end-of-archive blocks, the manifest's header, rounding slack
MANIFEST_NAME = "manifest.jsonl"


@dataclass
class PackResult:
    output: Path
    entries: list[ManifestEntry]
    tar_bytes: int
    available_files: int
    hours_per_source: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        hours = sum(e.duration or 0.0 for e in self.entries) / 3600
        speakers = len({(e.source, e.speaker) for e in self.entries})
        lines = [
            f"wrote {self.output}: {len(self.entries)} of {self.available_files} files, {hours:.2f} h, "
            f"{speakers} speakers, {self.tar_bytes / 2**20:.2f} MiB"
        ]
        lines += [f"  {src:<28} {h:6.2f} h" for src, h in sorted(self.hours_per_source.items())]
        return "\n".join(lines)


def _padded(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def _flac_bytes(entry: ManifestEntry) -> bytes:
    if entry.path.lower().endswith(".flac"):
        return Path(entry.path).read_bytes()
    audio, sr = load_audio(entry.path)
    buf = io.BytesIO()
    sf.write(buf, audio.T, sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:40] or "unknown"


def select_balanced(
    entries: list[ManifestEntry], budget: int, payload, seed: int = 0
) -> list[tuple[ManifestEntry, bytes]]:
    """Greedy duration-balanced choice over sources, then speakers, within `budget` tar bytes.

    `payload(entry) -> bytes` gives the stored bytes (called only for files that are tried).
    """
    rng = random.Random(seed)
    queues: dict[str, dict[str, list[ManifestEntry]]] = defaultdict(lambda: defaultdict(list))
    for e in entries:
        queues[e.source or "unknown"][e.speaker or "unknown"].append(e)
    for speakers in queues.values():
        for q in speakers.values():
            q.sort(key=lambda e: e.path)
            rng.shuffle(q)
    src_secs: dict[str, float] = defaultdict(float)
    spk_secs: dict[tuple[str, str], float] = defaultdict(float)
    chosen: list[tuple[ManifestEntry, bytes]] = []
    used = 0
    while queues:
        src = min(queues, key=lambda s: (src_secs[s], s))
        speakers = queues[src]
        spk = min(speakers, key=lambda k: (spk_secs[(src, k)], k))
        e = speakers[spk].pop()
        if not speakers[spk]:
            del speakers[spk]
            if not speakers:
                del queues[src]
        data = payload(e)
        line = len(_manifest_line(e, "audio/" + "x" * 60).encode()) + 1  # upper bound on its line
        cost = BLOCK + _padded(len(data)) + line
        if used + cost > budget:
            continue  # too big for what is left; smaller files may still fit
        used += cost
        src_secs[src] += e.duration or 0.0
        spk_secs[(src, spk)] += e.duration or 0.0
        chosen.append((e, data))
    return chosen


def _manifest_line(e: ManifestEntry, member: str) -> str:
    return replace(e, path=member).to_json()


def pack_manifest(
    manifest: str | os.PathLike,
    output: str | os.PathLike,
    max_mib: float = 48.0,
    split: str | None = None,
    seed: int = 0,
    real_only: bool = False,
) -> PackResult:
    """Write `output` (a tar of at most max_mib MiB); `real_only` leaves out synthetic speech."""
    if max_mib <= 0:
        raise HificodecError(f"--max-mib must be positive, got {max_mib}")
    entries = read_entries(manifest, split=split)
    if real_only:
        entries = [e for e in entries if not e.synthetic]
        if not entries:
            raise HificodecError(f"{manifest}: no real (non-synthetic) entries")
    limit = int(max_mib * 2**20)
    budget = limit - FIXED_OVERHEAD
    if budget <= 0:
        raise HificodecError(f"--max-mib {max_mib} is too small for even an empty tar")
    missing = [e.path for e in entries if not os.path.isfile(e.path)]
    if missing:
        raise HificodecError(f"{len(missing)} file(s) of {manifest} are missing, e.g. {missing[0]}")
    chosen = select_balanced(entries, budget, _flac_bytes, seed=seed)
    if not chosen:
        raise HificodecError(f"no file of {manifest} fits in {max_mib} MiB")

    counters: dict[str, int] = defaultdict(int)
    members = []
    for e, data in chosen:
        src = _slug(e.source or "unknown")
        counters[src] += 1
        members.append((f"audio/{src}/{counters[src]:06d}.flac", e, data))
    manifest_text = "".join(_manifest_line(e, name) + "\n" for name, e, _ in members).encode("utf-8")

    out = Path(output)
    with atomic_output(out) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            _add(tar, MANIFEST_NAME, manifest_text)
            for name, _, data in members:
                _add(tar, name, data)
        size = os.path.getsize(tmp)
        if size > limit:  # the accounting above is an upper bound; this guards against a bug in it
            raise HificodecError(f"internal error: tar is {size} bytes, over the {limit}-byte limit")
    hours: dict[str, float] = defaultdict(float)
    for e, _ in chosen:
        hours[e.source or "unknown"] += (e.duration or 0.0) / 3600
    return PackResult(out, [e for e, _ in chosen], size, len(entries), dict(hours))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # reproducible archives
    tar.addfile(info, io.BytesIO(data))
