"""Manifests for LibriTTS, VCTK and plain folders: layout detection, speakers, splits, transcripts,
folders holding several trees, duration cache."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
import soundfile as sf

from hificodec.cli import data_cmd
from hificodec.data.manifest import read_manifest
from hificodec.errors import HificodecError, HificodecWarning
from hificodec_tools import layouts
from hificodec_tools.corpus.splits import write_split_manifests
from hificodec_tools.layouts import detect_layout, folder_manifest, vctk_split_of
from tiny_corpora import make_libritts, make_vctk


def _audio(path, seconds, sr=24000, channels=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros((int(seconds * sr), channels), np.float32), sr)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def libritts(tmp_path):
    root = tmp_path / "LibriTTS"
    for subset, spk, chap, n in (("train-clean-100", "19", "198", 3), ("train-other-500", "20", "5", 1),
                                  ("dev-clean", "84", "121123", 2), ("test-clean", "1089", "134686", 2)):
        for i in range(n):
            _audio(root / subset / spk / chap / f"{spk}_{chap}_{i:06d}_000000.wav", 0.25 + 0.1 * i)
        (root / subset / spk / chap / f"{spk}_{chap}.trans.tsv").write_text("x")
    _audio(root / "train-clean-100" / "stray.wav", 0.1)  # not speaker/chapter/file: ignored
    return tmp_path


def test_libritts_layout_speakers_and_splits(libritts):
    assert detect_layout(libritts) == "libritts"
    scan = folder_manifest(libritts)
    entries = scan.entries
    assert scan.layout == "libritts" and len(entries) == 8
    stray = libritts / "LibriTTS" / "train-clean-100" / "stray.wav"
    assert scan.left_out == [
        f"1 audio file(s) outside the libritts speaker folders, e.g. {stray} (--layout folder takes every file)"
    ]
    by_split = {s: {e.speaker for e in entries if e.split == s} for s in ("train", "valid", "test")}
    assert by_split == {"train": {"libritts-19", "libritts-20"}, "valid": {"libritts-84"},
                        "test": {"libritts-1089"}}
    e = next(e for e in entries if e.path.endswith("19_198_000002_000000.wav"))
    assert e.duration == pytest.approx(0.45) and e.sample_rate == 24000 and e.channels == 1
    assert (e.language, e.source, e.extra) == ("en", "libritts", {"subset": "train-clean-100", "chapter": "198"})
    # a single subset folder is recognised too
    sub = folder_manifest(libritts / "LibriTTS" / "dev-clean").entries
    assert [e.split for e in sub] == ["valid", "valid"]


def test_vctk_keeps_mic1_and_holds_out_speakers(tmp_path):
    root = tmp_path / "VCTK-Corpus-0.92"
    speakers = [f"p{n}" for n in (225, 226, 227, 228, 229, 230, 360, 376)] + ["s5"]
    for spk in speakers:
        for mic in ("mic1", "mic2"):
            _audio(root / "wav48_silence_trimmed" / spk / f"{spk}_001_{mic}.flac", 0.2, sr=48000)
    (root / "txt" / "p225").mkdir(parents=True)
    assert detect_layout(root) == "vctk"
    scan = folder_manifest(root)
    entries = scan.entries
    assert len(entries) == len(speakers) and all("_mic1." in e.path for e in entries)
    assert scan.left_out == [] and any("left out 9 _mic2 files" in n for n in scan.notes)
    split = {e.speaker: e.split for e in entries}
    assert {s for s, v in split.items() if v == "test"} == {"vctk-p360", "vctk-p376", "vctk-s5"}
    assert {s for s, v in split.items() if v == "valid"} == {"vctk-p227", "vctk-p228", "vctk-p229", "vctk-p230"}
    assert vctk_split_of(["p225", "p360"]) == {"p225": "train", "p360": "test"}


def test_plain_folder_and_cache(tmp_path, monkeypatch):
    root = tmp_path / "clips"
    _audio(root / "a.wav", 0.5, sr=16000, channels=2)
    _audio(root / "sub" / "b.flac", 1.0)
    assert detect_layout(root) == "folder"
    out = tmp_path / "out" / "m.jsonl"
    scan = folder_manifest(root)
    assert scan.layout == "folder"
    out.parent.mkdir()
    write_split_manifests(out.parent, scan.entries)
    back = read_manifest(out.parent / "manifest.jsonl")
    assert [(os.path.basename(e.path), e.duration, e.channels) for e in back] == [("a.wav", 0.5, 2), ("b.flac", 1.0, 1)]
    assert back[0].split is None and back[0].speaker is None

    def no_reading(path):
        raise AssertionError(f"{path} read again despite the cache")

    monkeypatch.setattr(layouts, "audio_info", no_reading)
    again = folder_manifest(root).entries
    assert [e.duration for e in again] == [0.5, 1.0]
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _audio(root / "a.wav", 0.75, sr=16000)  # changed file: the cache entry is stale
    changed = folder_manifest(root).entries
    assert changed[0].duration == 0.75


def test_errors(tmp_path):
    with pytest.raises(HificodecError, match="not a folder"):
        folder_manifest(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HificodecError, match="no audio files"):
        folder_manifest(tmp_path / "empty")
    with pytest.raises(HificodecError, match="no LibriTTS subset"):
        folder_manifest(tmp_path / "empty", layout="libritts")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(HificodecError, match="1 unreadable audio file.*x.wav"):
        folder_manifest(tmp_path / "bad")


def test_cli_manifest(libritts, capsys):
    parser = argparse.ArgumentParser()
    data_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "manifest", str(libritts), "-o", str(libritts / "m"), "--no-progress"])
    with pytest.warns(HificodecWarning, match="left out 1 audio file.*stray.wav"):
        assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "8 files" in out and "layout libritts" in out
    assert len(read_manifest(libritts / "m" / "manifest.jsonl")) == 8
    assert [len(read_manifest(libritts / "m" / f"{s}.jsonl")) for s in ("train", "valid", "test")] == [4, 2, 2]


def test_transcripts_are_kept(tmp_path):
    libri = folder_manifest(make_libritts(tmp_path / "LibriTTS")).entries
    texts19 = {e.text for e in libri if e.speaker == "libritts-19"}
    assert texts19 == {"Speaker 19 says line 0.", "Speaker 19 says line 1."}
    vctk_root = make_vctk(tmp_path / "VCTK", speakers=("p225", "p315"))
    (vctk_root / "txt" / "p315" / "p315_001.txt").unlink()  # as in VCTK itself: some have no transcript
    scan = folder_manifest(vctk_root)
    texts = {e.path.rsplit("/", 1)[-1]: e.text for e in scan.entries}
    assert texts["p225_002_mic1.flac"] == "Please call Stella, p225 number 2."
    assert texts["p315_001_mic1.flac"] is None
    assert f"vctk tree {vctk_root}: 1 of 4 files have no transcript" in scan.notes
    back = tmp_path / "m"
    back.mkdir()
    write_split_manifests(back, scan.entries)
    assert {e.text for e in read_manifest(back / "manifest.jsonl")} == {t for t in texts.values()}


def test_a_folder_with_several_trees_keeps_every_tree(tmp_path, monkeypatch):
    """LibriTTS and VCTK side by side: both read with their own layout; stray audio is reported."""
    root = tmp_path / "data"
    make_libritts(root / "LibriTTS")
    make_vctk(root / "VCTK-Corpus-0.92")
    _audio(root / "notes" / "memo.wav", 0.1)
    assert detect_layout(root) == "libritts+vctk"
    scan = folder_manifest(root)
    assert scan.layout == "libritts+vctk" and [t.layout for t in scan.trees] == ["libritts", "vctk"]
    assert {e.source for e in scan.entries} == {"libritts", "vctk"}
    assert len(scan.entries) == 12 + 14 and sum(len(t.entries) for t in scan.trees) == len(scan.entries)
    assert len(scan.left_out) == 1 and "memo.wav" in scan.left_out[0]
    monkeypatch.chdir(root)  # a relative folder finds the same files
    assert len(folder_manifest(".").entries) == len(scan.entries)
    # each tree's files are there whatever the order they were found in
    assert len(folder_manifest(root, layout="vctk").entries) == 14
    only_libri = folder_manifest(root, layout="libritts")
    assert len(only_libri.entries) == 12 and "29 audio file(s) outside the libritts" in only_libri.left_out[0]
    # LibriTTS and LibriTTS-R in one folder are two trees
    make_libritts(root / "LibriTTS_R")
    assert [str(t.root.name) for t in folder_manifest(root).trees] == ["LibriTTS", "LibriTTS_R", "VCTK-Corpus-0.92"]


def test_two_vctk_releases_use_the_newer_and_say_so(tmp_path):
    root = make_vctk(tmp_path / "VCTK", speakers=("p225",))
    _audio(root / "wav48" / "p225" / "p225_001.wav", 0.1, sr=48000)
    scan = folder_manifest(root)
    assert all("wav48_silence_trimmed" in e.path for e in scan.entries) and scan.left_out == []
    assert any("left out 1 files in wav48 (another VCTK release" in n for n in scan.notes)
