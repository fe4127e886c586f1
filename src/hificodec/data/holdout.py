"""Which entries train and which validate, such that no held-out speaker is ever trained on.

`--data` may be a whole manifest with a `split` field and `--valid` another file, or the same one: the
split field is honoured either way (only `train` entries, or entries without a split, train; from a
`--valid` file that has `valid` entries, only those validate). A training entry whose speaker is in
the validation set, or is a `valid`/`test` speaker of either file, is dropped and counted: a
hand-made split (e.g. by utterance) would otherwise score the model on voices it learned.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from .manifest import ManifestEntry

HELD_OUT = ("valid", "test")


@dataclass
class TrainValid:
    train: list[ManifestEntry]
    valid: list[ManifestEntry]
    notes: list[str] = field(default_factory=list)  # what was left out of training, and why


def train_valid(data: Sequence[ManifestEntry], valid: Sequence[ManifestEntry] | None = None) -> TrainValid:
    """Training and validation entries from `data` and, when given, a separate `valid` list."""
    entries = list(data)
    labelled = any(e.split for e in entries)
    train = [e for e in entries if e.split in (None, "train")] if labelled else entries
    notes = []
    if valid is None:
        held = [e for e in entries if e.split == "valid"]
        other: list[ManifestEntry] = []
    else:
        other = list(valid)
        held = [e for e in other if e.split == "valid"] or other
        left = len(entries) - len(train)
        if left:
            notes.append(f"{left} entries of the training data are in its valid/test split and are not trained on")
    held_speakers = {e.speaker for e in held if e.speaker} | {
        e.speaker for e in [*entries, *other] if e.speaker and e.split in HELD_OUT
    }
    leaking = [e for e in train if e.speaker in held_speakers]
    if leaking:
        train = [e for e in train if e.speaker not in held_speakers]
        speakers = sorted({e.speaker for e in leaking if e.speaker})
        notes.append(
            f"dropped {len(leaking)} training entries of {len(speakers)} held-out speaker(s) (validation or test "
            f"speakers, e.g. {speakers[0]}): a model is validated on voices it did not train on"
        )
    held_paths = {os.path.realpath(e.path) for e in held}
    shared = sum(os.path.realpath(e.path) in held_paths for e in train)
    if shared:  # no speaker ids to go by: say so, but leave it (a smoke test may validate on its train set)
        notes.append(f"{shared} training file(s) are also validation files")
    return TrainValid(train, held, notes)
