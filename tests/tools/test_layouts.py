"""Manifests for LibriTTS, VCTK and plain folders: layout detection, speakers, splits, duration cache."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
import soundfile as sf

from hificodec.cli import data_cmd
from hificodec.data.manifest import read_manifest
from hificodec.errors import HificodecError
from hificodec_tools import layouts
from hificodec_tools.layouts import detect_layout, folder_manifest, vctk_split_of, write_folder_manifest


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
    entries, layout = folder_manifest(libritts)
    assert layout == "libritts" and len(entries) == 8
    by_split = {s: {e.speaker for e in entries if e.split == s} for s in ("train", "valid", "test")}
    assert by_split == {"train": {"libritts-19", "libritts-20"}, "valid": {"libritts-84"},
                        "test": {"libritts-1089"}}
    e = next(e for e in entries if e.path.endswith("19_198_000002_000000.wav"))
    assert e.duration == pytest.approx(0.45) and e.sample_rate == 24000 and e.channels == 1
    assert (e.language, e.source, e.extra) == ("en", "libritts", {"subset": "train-clean-100", "chapter": "198"})
    # a single subset folder is recognised too
    sub, _ = folder_manifest(libritts / "LibriTTS" / "dev-clean")
    assert [e.split for e in sub] == ["valid", "valid"]


def test_vctk_keeps_mic1_and_holds_out_speakers(tmp_path):
    root = tmp_path / "VCTK-Corpus-0.92"
    speakers = [f"p{n}" for n in (225, 226, 227, 228, 229, 230, 360, 376)] + ["s5"]
    for spk in speakers:
        for mic in ("mic1", "mic2"):
            _audio(root / "wav48_silence_trimmed" / spk / f"{spk}_001_{mic}.flac", 0.2, sr=48000)
    (root / "txt" / "p225").mkdir(parents=True)
    assert detect_layout(root) == "vctk"
    entries, _ = folder_manifest(root)
    assert len(entries) == len(speakers) and all("_mic1." in e.path for e in entries)
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
    entries, layout = write_folder_manifest(root, out)
    assert layout == "folder"
    back = read_manifest(out)
    assert [(os.path.basename(e.path), e.duration, e.channels) for e in back] == [("a.wav", 0.5, 2), ("b.flac", 1.0, 1)]
    assert back[0].split is None and back[0].speaker is None

    def no_reading(path):
        raise AssertionError(f"{path} read again despite the cache")

    monkeypatch.setattr(layouts, "audio_info", no_reading)
    again, _ = folder_manifest(root)
    assert [e.duration for e in again] == [0.5, 1.0]
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _audio(root / "a.wav", 0.75, sr=16000)  # changed file: the cache entry is stale
    changed, _ = folder_manifest(root)
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
    args = parser.parse_args(["data", "manifest", str(libritts), "-o", str(libritts / "m.jsonl"), "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "8 files" in out and "layout libritts" in out
    assert len(read_manifest(libritts / "m.jsonl")) == 8
