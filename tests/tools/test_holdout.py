"""`hificodec data manifest` writes train/valid/test held out by speaker (hificodec_tools.holdout), for
LibriTTS, VCTK and folders holding both; training from those files cannot leak a held-out speaker."""

from __future__ import annotations

import pytest

from hificodec.cli import main
from hificodec.data.manifest import read_manifest
from hificodec.errors import UsageError
from hificodec.train.trainer import split_data
from hificodec_tools.holdout import HoldoutOptions, hold_out
from hificodec_tools.layouts import folder_manifest
from tiny_corpora import make_libritts, make_vctk

SPLITS = ("train", "valid", "test")


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _speakers(folder, split):
    return {e.speaker for e in read_manifest(folder / f"{split}.jsonl")}


def _assert_disjoint(folder):
    sets = [_speakers(folder, s) for s in SPLITS]
    assert all(sets) and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_mixed_folder_split_files_text_and_no_leak(tmp_path, capsys):
    """The researcher's case: LibriTTS with only train-clean-100 next to VCTK, then train --valid."""
    data = tmp_path / "data"
    make_libritts(data / "LibriTTS", {"train-clean-100": ("19", "26", "27", "32", "40", "41")})
    make_vctk(data / "VCTK-Corpus-0.92")
    out = tmp_path / "manifests"
    assert main(["data", "manifest", str(data), "-o", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "layout libritts+vctk" in printed
    assert "no standard valid or test speakers; held out 1 speaker(s)" in printed  # said, not silent
    every = read_manifest(out / "manifest.jsonl")
    assert len(every) == 12 + 14 and {e.source for e in every} == {"libritts", "vctk"}  # no tree dropped
    assert all(e.text for e in every)
    _assert_disjoint(out)
    assert {s.split("-")[0] for s in _speakers(out, "valid")} == {"libritts", "vctk"}
    assert sum(len(read_manifest(out / f"{s}.jsonl")) for s in SPLITS) == len(every)
    # --valid from the split files, or the whole manifest given twice: no held-out speaker trains
    for data_arg, valid_arg in ((out / "train.jsonl", out / "valid.jsonl"),
                                (out / "manifest.jsonl", out / "manifest.jsonl")):
        train, valid = split_data(str(data_arg), str(valid_arg))
        assert {e.speaker for e in train} == _speakers(out, "train")
        assert {e.speaker for e in valid} == _speakers(out, "valid")


def test_standard_splits_are_kept(tmp_path):
    """LibriTTS dev/test subsets and VCTK's fixed test speakers: nothing is picked by share."""
    root = tmp_path / "data"
    make_libritts(root / "LibriTTS")
    make_vctk(root / "VCTK", speakers=("p225", "p226", "p227", "p228", "p229", "p230", "p360"))
    scan = folder_manifest(root)
    notes = hold_out(scan.trees)
    assert notes == []
    split_of = {e.speaker: e.split for e in scan.entries}
    assert split_of["libritts-84"] == "valid" and split_of["libritts-1089"] == "test"
    assert split_of["vctk-p360"] == "test" and split_of["vctk-p225"] == "train"


def test_shares_named_speakers_and_errors(tmp_path):
    root = make_libritts(tmp_path / "LibriTTS", {"train-clean-100": tuple(str(n) for n in range(10, 20))})

    def splits(**kw):
        scan = folder_manifest(root)
        notes = hold_out(scan.trees, HoldoutOptions(**kw))
        by = {s: {e.speaker for e in scan.entries if e.split == s} for s in SPLITS}
        return by, notes

    by, notes = splits()
    assert len(by["valid"]) == len(by["test"]) == 1 and len(by["train"]) == 8
    by, _ = splits(valid_share=0.2, test_share=0)
    assert len(by["valid"]) == 2 and not by["test"]
    by, notes = splits(valid_speakers=("11", "libritts-12"), test_speakers=("13",))
    assert by["valid"] == {"libritts-11", "libritts-12"} and by["test"] == {"libritts-13"}
    assert not any("held out" in n for n in notes)  # named splits are not filled by share
    with pytest.raises(UsageError, match="speaker '99' given for test is not a speaker of this folder"):
        splits(test_speakers=("99",))
    with pytest.raises(UsageError, match="named for both valid and test"):
        splits(valid_speakers=("11",), test_speakers=("11",))
    with pytest.raises(UsageError, match="share must be between 0 and 0.4"):
        splits(valid_share=0.5)


def test_a_speaker_in_two_trees_ends_in_one_split(tmp_path):
    """LibriTTS and LibriTTS-R hold the same speakers: a share picked in one tree holds it out in both."""
    speakers = {"train-clean-100": tuple(str(n) for n in range(10, 20))}
    make_libritts(tmp_path / "LibriTTS", speakers)
    make_libritts(tmp_path / "LibriTTS_R", speakers)
    scan = folder_manifest(tmp_path)
    notes = hold_out(scan.trees, HoldoutOptions(seed=3))
    of: dict[str, set[str]] = {}
    for e in scan.entries:
        of.setdefault(e.speaker, set()).add(e.split)
    assert all(len(s) == 1 for s in of.values())
    assert sum("held out" in n for n in notes) == 2


def test_plain_folders_say_nothing_is_held_out(tmp_path, capsys):
    make_vctk(tmp_path / "clips" / "x", speakers=("p225",))  # no wav48* folder above: a plain folder
    (tmp_path / "clips" / "x" / "wav48_silence_trimmed").rename(tmp_path / "clips" / "x" / "audio")
    assert main(["data", "manifest", str(tmp_path / "clips"), "--no-progress"]) == 0
    assert "no speaker ids, so none of its files is held out" in capsys.readouterr().out
    assert [len(read_manifest(tmp_path / "clips" / f"{s}.jsonl")) for s in SPLITS] == [4, 0, 0]


def test_cli_errors_are_one_line(tmp_path, capsys):
    make_libritts(tmp_path / "LibriTTS")
    assert main(["data", "manifest", str(tmp_path), "-o", str(tmp_path / "m.jsonl")]) == 2
    assert capsys.readouterr().err.strip() == ("hificodec data: error: -o takes a folder: it receives manifest.jsonl, "
                                               "train.jsonl, valid.jsonl and test.jsonl")
    assert main(["data", "manifest", str(tmp_path), "--no-progress", "--test-speakers", "nobody"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
