"""Speaker-disjoint train/valid/test splits.

Whole split groups (speakers, or sets of speakers that may be one person) go to one split, so valid and
test measure how a codec does on voices it never heard. Held-out groups are picked round-robin across
sources (so the test set spans packages and languages) in a seeded hash order. A group that is a large
share of its source (e.g. the only speaker of a package) always stays in train: holding it out would
remove that source from training.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hificodec.data.manifest import ManifestEntry, write_manifest

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class SplitUnit:
    group: str
    source: str
    seconds: float
    synthetic: bool = False


@dataclass(frozen=True)
class SplitResult:
    split_of: dict[str, str]  # group -> "train" / "valid" / "test"
    test_seconds: float
    valid_seconds: float
    warnings: tuple[str, ...] = ()


def speaker_disjoint_split(
    units: Sequence[SplitUnit],
    *,
    test_minutes: float,
    valid_minutes: float,
    seed: int = 0,
    max_source_share: float = 0.25,
) -> SplitResult:
    """Assign each group to a split; test and valid get real (non-synthetic) groups only."""
    per_group: dict[str, SplitUnit] = {}
    for u in units:  # merge duplicates of the same group (sum the durations)
        prev = per_group.get(u.group)
        per_group[u.group] = u if prev is None else SplitUnit(
            u.group, prev.source, prev.seconds + u.seconds, prev.synthetic and u.synthetic
        )
    source_total: dict[str, float] = defaultdict(float)
    for u in per_group.values():
        if not u.synthetic:
            source_total[u.source] += u.seconds

    candidates: dict[str, list[SplitUnit]] = defaultdict(list)
    for u in per_group.values():
        if not u.synthetic and u.seconds <= max_source_share * source_total[u.source]:
            candidates[u.source].append(u)
    for src in candidates:
        candidates[src].sort(key=lambda u: _order_key(seed, u.group))

    split_of = {g: "train" for g in per_group}
    queues = [list(candidates[s]) for s in sorted(candidates)]
    totals = {"test": 0.0, "valid": 0.0}
    for split, target in (("test", test_minutes * 60), ("valid", valid_minutes * 60)):
        while totals[split] < target and any(queues):
            for q in queues:  # one group per source per round
                if q and totals[split] < target:
                    u = q.pop(0)
                    split_of[u.group] = split
                    totals[split] += u.seconds
    warnings = tuple(
        f"{split} holds {totals[split] / 60:.1f} min of real speech, less than the {target:g} min asked "
        "(not enough held-out speakers)"
        for split, target in (("test", test_minutes), ("valid", valid_minutes))
        if totals[split] < target * 60
    )
    return SplitResult(split_of, totals["test"], totals["valid"], warnings)


def _order_key(seed: int, group: str) -> str:
    return hashlib.sha1(f"{seed}:{group}".encode()).hexdigest()


def split_order(e: ManifestEntry) -> tuple:
    """Sort key of the written manifests: by split, source, speaker, path."""
    return SPLITS.index(e.split or "train"), e.source or "", e.speaker or "", e.path


def write_split_manifests(out_dir: str | os.PathLike, entries: Sequence[ManifestEntry]) -> dict[str, Path]:
    """`manifest.jsonl` (every entry, with its split) and `train.jsonl`, `valid.jsonl`, `test.jsonl`,
    each written atomically; all four every time (an empty one included), so that no file of an
    earlier run with other splits is left next to them. Returns name -> path."""
    out = Path(out_dir)
    ordered = sorted(entries, key=split_order)
    paths = {"manifest": out / "manifest.jsonl", **{name: out / f"{name}.jsonl" for name in SPLITS}}
    write_manifest(paths["manifest"], ordered)
    for name in SPLITS:
        write_manifest(paths[name], [e for e in ordered if (e.split or "train") == name])
    return paths
