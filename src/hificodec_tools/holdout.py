"""Held-out speakers for a scanned folder (`layouts.folder_manifest`), so that valid and test measure
voices the model never trained on.

Each tree keeps its corpus's standard split where it has one (LibriTTS dev-*/test-*, VCTK's fixed test
speakers). A tree that has no valid (or no test) speakers, e.g. LibriTTS with only train-clean-100,
gets some of its train speakers held out: `valid_share` / `test_share` of its audio, picked by
`corpus.splits.speaker_disjoint_split` (seeded, whole speakers). Speakers named in `valid_speakers` /
`test_speakers` go to that split whatever their tree says, and a split named that way is not filled by
share. A speaker found in several trees (LibriTTS next to LibriTTS-R) ends in one split: the most
held-out one it got. Every choice made here comes back as a note, for the user to see.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from hificodec.errors import UsageError

from .corpus.splits import SPLITS, SplitUnit, speaker_disjoint_split
from .layouts import Tree

#: the most of a tree's audio one held-out split may take (train keeps the rest)
MAX_SHARE = 0.4


@dataclass(frozen=True)
class HoldoutOptions:
    valid_share: float = 0.05  # of a tree's audio, for trees without standard valid speakers
    test_share: float = 0.05
    valid_speakers: tuple[str, ...] = ()  # speaker ids as in the manifest (libritts-19) or bare (19)
    test_speakers: tuple[str, ...] = ()
    seed: int = 0


def hold_out(trees: Sequence[Tree], opts: HoldoutOptions = HoldoutOptions()) -> list[str]:
    """Set `split` on every entry of `trees` (in place); returns notes on what was held out and why."""
    for name, share in (("valid", opts.valid_share), ("test", opts.test_share)):
        if not 0 <= share <= MAX_SHARE:
            raise UsageError(f"the {name} share must be between 0 and {MAX_SHARE:g}, got {share:g}")
    named = _named_speakers(trees, opts)
    notes = []
    for tree in trees:
        if not any(e.speaker for e in tree.entries):
            for e in tree.entries:
                e.split = "train"
            notes.append(f"{tree.name}: no speaker ids, so none of its files is held out (all train)")
            continue
        for e in tree.entries:
            e.split = named.get(e.speaker or "", e.split or "train")
        wanted = {
            split: share for split, share, listed in (("valid", opts.valid_share, opts.valid_speakers),
                                                      ("test", opts.test_share, opts.test_speakers))
            if not listed and not any(e.split == split for e in tree.entries)
        }  # fmt: skip
        if wanted:
            notes += _fill_by_share(tree, wanted, opts.seed)
    notes += _one_split_per_speaker(trees)
    return notes


def _named_speakers(trees: Sequence[Tree], opts: HoldoutOptions) -> dict[str, str]:
    """speaker id -> split for the speakers the options name; an unknown or twice-named one is an error."""
    known = {e.speaker for t in trees for e in t.entries if e.speaker}
    if not known and (opts.valid_speakers or opts.test_speakers):
        raise UsageError("--valid-speakers/--test-speakers need speaker ids, and this folder's files have none")
    bare: dict[str, set[str]] = defaultdict(set)
    for s in known:
        bare[s.split("-", 1)[-1]].add(s)
    named: dict[str, str] = {}
    for split, listed in (("valid", opts.valid_speakers), ("test", opts.test_speakers)):
        for name in listed:
            ids = {name} if name in known else bare.get(name, set())
            if len(ids) != 1:
                why = "matches several speakers" if ids else "is not a speaker of this folder"
                raise UsageError(f"speaker '{name}' given for {split} {why} (ids look like {min(known)})")
            speaker = next(iter(ids))
            if named.get(speaker, split) != split:
                raise UsageError(f"speaker '{name}' is named for both valid and test")
            named[speaker] = split
    return named


def _fill_by_share(tree: Tree, wanted: dict[str, float], seed: int) -> list[str]:
    total = sum(e.duration or 0.0 for e in tree.entries)
    units = [SplitUnit(e.speaker or e.path, tree.name, e.duration or 0.0) for e in tree.entries if e.split == "train"]
    result = speaker_disjoint_split(
        units, test_minutes=wanted.get("test", 0.0) * total / 60, valid_minutes=wanted.get("valid", 0.0) * total / 60,
        seed=seed,
    )  # fmt: skip
    for e in tree.entries:
        if e.split == "train":
            e.split = result.split_of[e.speaker or e.path]
    held = []
    for split in wanted:
        speakers = {e.speaker for e in tree.entries if e.split == split}
        minutes = (result.valid_seconds if split == "valid" else result.test_seconds) / 60
        held.append(f"{len(speakers)} speaker(s) ({minutes:.1f} min) for {split}" if speakers else f"none for {split}")
    shares = ", ".join(f"--{s}-share {share:g}" for s, share in wanted.items())
    notes = [
        f"{tree.name}: no standard {' or '.join(wanted)} speakers; held out {' and '.join(held)} ({shares}; "
        "--valid-speakers/--test-speakers name them instead)"
    ]
    return notes + [f"{tree.name}: {w}" for w in result.warnings]


def _one_split_per_speaker(trees: Sequence[Tree]) -> list[str]:
    """A speaker in several trees goes wholly to the most held-out split it got (never to train twice)."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for t in trees:
        for e in t.entries:
            if e.speaker:
                splits_of[e.speaker].add(e.split or "train")
    final = {s: max(got, key=SPLITS.index) for s, got in splits_of.items() if len(got) > 1}
    if not final:
        return []
    moved = 0
    for t in trees:
        for e in t.entries:
            if e.speaker in final and e.split != final[e.speaker]:
                e.split = final[e.speaker]
                moved += 1
    example = min(final)
    return [f"{len(final)} speaker(s) were in different splits in different trees; {moved} of their files moved to "
            f"the held-out split (e.g. {example} -> {final[example]})"]
