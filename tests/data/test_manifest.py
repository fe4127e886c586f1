"""The manifest format: round trips, relative paths, the inputs read_entries accepts, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from hificodec.data.manifest import ManifestEntry, read_entries, read_manifest, scan_audio, write_manifest
from hificodec.errors import HificodecError


def _wav(path, seconds=0.1, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * sr), np.float32), sr)
    return path


def test_round_trip_keeps_fields_and_extra(tmp_path):
    audio = _wav(tmp_path / "a" / "x.wav")
    e = ManifestEntry(path=str(audio), duration=0.1, split="train", speaker="s1", language="en",
                      source="pkg", license="GPL-2+", synthetic=False, sample_rate=44100, channels=2, text="hé",
                      extra={"sha1": "abc"})
    out = tmp_path / "m" / "manifest.jsonl"
    out.parent.mkdir()
    write_manifest(out, [e])
    raw = json.loads(out.read_text(encoding="utf-8"))
    assert raw["path"] == "../a/x.wav"  # stored relative to the manifest's folder
    assert raw["text"] == "hé" and "extra" not in raw
    [back] = read_manifest(out)
    assert back.path == str(tmp_path / "m" / "../a/x.wav")
    assert (back.duration, back.split, back.speaker, back.synthetic, back.channels) == (0.1, "train", "s1", False, 2)
    assert back.text == "hé" and back.extra == {"sha1": "abc"}


def test_none_fields_are_left_out(tmp_path):
    out = tmp_path / "m.jsonl"
    write_manifest(out, [ManifestEntry(path=str(tmp_path / "x.wav"))])
    assert json.loads(out.read_text()) == {"path": "x.wav"}


def test_read_entries_accepts_folder_list_and_file(tmp_path):
    a = _wav(tmp_path / "d" / "b" / "2.wav")
    b = _wav(tmp_path / "d" / "1.flac")
    (tmp_path / "d" / ".hidden.wav").write_bytes(b"x")
    (tmp_path / "d" / ".1.flac.abc.part").write_bytes(b"x")
    (tmp_path / "d" / "notes.txt").write_text("not audio")
    assert [e.path for e in read_entries(tmp_path / "d")] == [str(b), str(a)]
    lst = tmp_path / "list.txt"
    lst.write_text("# comment\nd/1.flac\n\n" + str(a) + "\n")
    assert [e.path for e in read_entries(lst)] == [str(tmp_path / "d/1.flac"), str(a)]
    assert [e.path for e in read_entries(a)] == [str(a)]
    assert scan_audio(tmp_path / "d") == [str(b), str(a)]


def test_split_filter(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"path": "a.wav", "split": "train"}\n{"path": "b.wav", "split": "test"}\n')
    assert [e.path for e in read_entries(m, split="test")] == [str(tmp_path / "b.wav")]
    with pytest.raises(HificodecError, match="no entries with split 'valid'"):
        read_entries(m, split="valid")


@pytest.mark.parametrize(
    "text, message",
    [('{"path": "a.wav"}\n{"path": \n', r"m.jsonl:2: not valid JSON"),
     ('{"duration": 1.0}\n', "without 'path'")],
)
def test_bad_manifests_name_the_problem(tmp_path, text, message):
    m = tmp_path / "m.jsonl"
    m.write_text(text)
    with pytest.raises(HificodecError, match=message):
        read_manifest(m)


def test_bad_sources(tmp_path):
    with pytest.raises(HificodecError, match="no such file"):
        read_entries(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HificodecError, match="no audio files"):
        read_entries(tmp_path / "empty")
    (tmp_path / "x.csv").write_text("a")
    with pytest.raises(HificodecError, match="expected a folder"):
        read_entries(tmp_path / "x.csv")
