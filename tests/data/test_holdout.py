"""Training never sees a held-out speaker, whatever --data and --valid are (hificodec.data.holdout)."""

from __future__ import annotations

import logging

from hificodec.data.holdout import train_valid
from hificodec.data.manifest import ManifestEntry
from hificodec.train.trainer import split_data


def _manifest() -> list[ManifestEntry]:
    """4 train speakers, 1 valid, 1 test; 2 files each (the researcher's vctk.jsonl, smaller)."""
    splits = {"a": "train", "b": "train", "c": "train", "d": "train", "v": "valid", "t": "test"}
    return [ManifestEntry(path=f"/x/{s}{i}.wav", speaker=s, split=split) for s, split in splits.items() for i in (0, 1)]


def test_the_same_manifest_as_data_and_valid_keeps_its_split():
    m = _manifest()
    chosen = train_valid(m, m)
    assert {e.speaker for e in chosen.train} == {"a", "b", "c", "d"}
    assert {e.speaker for e in chosen.valid} == {"v"}
    assert chosen.notes == ["4 entries of the training data are in its valid/test split and are not trained on"]
    assert train_valid(m).train == chosen.train and train_valid(m).valid == chosen.valid


def test_speakers_of_the_valid_file_or_held_out_splits_never_train():
    # a hand-made split by utterance: speaker a is in both; t is a test speaker of the valid file
    data = [ManifestEntry(path=f"/x/{s}{i}.wav", speaker=s) for s in "abt" for i in (0, 1)]
    valid = [ManifestEntry(path="/x/a9.wav", speaker="a", split="valid"),
             ManifestEntry(path="/x/t9.wav", speaker="t", split="test")]
    chosen = train_valid(data, valid)
    assert {e.speaker for e in chosen.train} == {"b"} and [e.speaker for e in chosen.valid] == ["a"]
    assert chosen.notes[0].startswith("dropped 4 training entries of 2 held-out speaker(s)")


def test_files_without_speakers_shared_with_valid_are_reported_not_dropped():
    data = [ManifestEntry(path="/x/a.wav"), ManifestEntry(path="/x/b.wav")]
    chosen = train_valid(data, [ManifestEntry(path="/x/a.wav")])
    assert len(chosen.train) == 2 and chosen.notes == ["1 training file(s) are also validation files"]


def test_split_data_logs_what_it_leaves_out(tmp_path, caplog):
    m = _manifest()
    with caplog.at_level(logging.WARNING, logger="hificodec.train.trainer"):
        train, valid = split_data(m, [*m, ManifestEntry(path="/x/a5.wav", speaker="a", split="valid")])
    assert {e.speaker for e in train} == {"b", "c", "d"} and {e.speaker for e in valid} == {"v", "a"}
    assert "dropped 2 training entries of 1 held-out speaker(s)" in caplog.text
