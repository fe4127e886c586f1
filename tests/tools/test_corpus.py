"""The corpus builder on a tiny fake Debian package tree (no network, no apt)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hificodec.data.manifest import ManifestEntry, read_manifest
from hificodec.errors import HificodecError
from hificodec_tools.corpus import build as corpus
from hificodec_tools.corpus.build import CorpusOptions, build_corpus
from hificodec_tools.corpus.debian_sources import REAL_SPEECH_PACKAGES

from .conftest import FakeFetcher

PACKAGES = [p for p in REAL_SPEECH_PACKAGES if p.package in ("festvox-ru", "tuxpaint-stamps-default", "kajongg")]


def options(out: Path, fetch, **kw) -> CorpusOptions:
    base = dict(
        out_dir=out, packages=PACKAGES, fetch=fetch, test_minutes=0.07, valid_minutes=0.07, progress=False
    )
    base.update(kw)
    return CorpusOptions(**base)


@pytest.fixture(scope="module")
def built(fake_trees, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    fetch = FakeFetcher(fake_trees)
    return out, build_corpus(options(out, fetch)), fetch


def test_selects_converts_and_drops(built):
    out, result, _ = built
    entries = read_manifest(out / "manifest.jsonl")
    by_source = defaultdict(list)
    for e in entries:
        by_source[e.source].append(e)
    # 4 festvox + 15 tuxpaint descriptions (one duplicate, one short, one silent dropped) + 12 kajongg
    assert len(by_source["festvox-ru"]) == 4
    assert len(by_source["tuxpaint-stamps-default"]) == 15
    assert len(by_source["kajongg"]) == 12
    tux = result.stats["tuxpaint-stamps-default"]
    assert (tux.selected, tux.duplicates, tux.short, tux.silent, tux.kept) == (18, 1, 1, 1, 15)
    assert not any("cat0_desc_short" in e.extra["orig"] or e.extra["orig"].endswith("cat0.ogg") for e in entries)
    for e in entries:
        info = sf.info(e.path)
        assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
        assert e.duration == pytest.approx(info.frames / 16000, abs=1e-3)
        assert e.synthetic is False and e.license and e.speaker and e.language
        assert (e.sample_rate, e.channels) == (16000, 1)
    assert len({e.extra["sha1"] for e in entries}) == len(entries)


def test_manifest_fields_and_relative_paths(built):
    out, _, _ = built
    first = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert not os.path.isabs(first["path"]) and (out / first["path"]).is_file()
    kaj = [e for e in read_manifest(out / "manifest.jsonl") if e.source == "kajongg"]
    assert {e.speaker for e in kaj} == {"kajongg-en-male1", "kajongg-en-female1", "kajongg-de-male1",
                                        "kajongg-de-female1"}
    assert {e.language for e in kaj} == {"en", "de"}
    assert all(e.license == "GPL-2+" and (e.sample_rate, e.channels) == (16000, 1) for e in kaj)
    assert all((e.extra["orig_sample_rate"], e.extra["orig_channels"]) == (22050, 1) for e in kaj)
    assert (out / "licenses" / "kajongg.copyright").read_text().startswith("License: fake")


def test_downmix_and_resampling_preserve_signal(built, fake_trees):
    out, _, _ = built
    entries = read_manifest(out / "manifest.jsonl")
    # stereo tuxpaint clip: left = tone, right = 0.5 * tone -> mono = 0.75 * tone (RMS 0.75 * 0.3 / sqrt 2)
    stereo = next(e for e in entries if e.extra["orig"].endswith("cat0_desc_es.ogg"))
    assert (stereo.extra["orig_channels"], stereo.extra["orig_sample_rate"]) == (2, 44100)
    mono, sr = sf.read(stereo.path)
    rms = np.sqrt(np.mean(mono[2000:-2000] ** 2))
    assert rms == pytest.approx(0.75 * 0.3 / np.sqrt(2), rel=0.03)
    assert len(mono) / sr == pytest.approx(1.5, abs=2e-3)
    # 1 kHz tone at 22.05 kHz -> still 1 kHz at 16 kHz
    tone = next(e for e in entries if e.extra["orig"] == "usr/share/kajongg/voices/male1/w0.ogg")
    x, sr = sf.read(tone.path)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    assert np.fft.rfftfreq(len(x), 1 / sr)[spectrum.argmax()] == pytest.approx(1000, abs=2)


def test_split_is_speaker_disjoint(built):
    out, result, _ = built
    entries = read_manifest(out / "manifest.jsonl")
    groups = defaultdict(set)
    for e in entries:
        groups[e.split].add(e.extra.get("group", e.speaker))
    assert groups["test"] and groups["valid"]
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["valid"])
    assert not (groups["valid"] & groups["test"])
    test_secs = sum(e.duration for e in entries if e.split == "test")
    assert test_secs >= 0.07 * 60
    # the only speaker of festvox-ru and the kajongg speakers (English + German = one group) stay in train
    assert {e.split for e in entries if e.source in ("festvox-ru", "kajongg")} == {"train"}
    for name in ("train", "valid", "test"):
        part = read_manifest(out / f"{name}.jsonl")
        assert sorted(e.path for e in part) == sorted(e.path for e in entries if e.split == name)
    assert result.warnings == []
    assert "tuxpaint-stamps-default" in result.summary and "test" in result.summary


def test_rerun_is_idempotent(built, fake_trees):
    out, _, _ = built
    before = {p: p.stat().st_mtime_ns for p in (out / "audio").rglob("*.flac")}
    manifest = (out / "manifest.jsonl").read_text()
    fetch = FakeFetcher(fake_trees)
    build_corpus(options(out, fetch))
    assert fetch.calls == []  # every package was recorded as finished
    assert {p: p.stat().st_mtime_ns for p in (out / "audio").rglob("*.flac")} == before
    assert (out / "manifest.jsonl").read_text() == manifest


def test_resume_after_kill(built, fake_trees, tmp_path, monkeypatch):
    ref_out, _, _ = built
    out = tmp_path / "c"
    real_convert = corpus.convert_clip
    calls = {"n": 0}

    def dying_convert(job):
        calls["n"] += 1
        if calls["n"] == 10:  # killed while converting a tuxpaint file
            raise KeyboardInterrupt
        return real_convert(job)

    monkeypatch.setattr(corpus, "convert_clip", dying_convert)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(options(out, FakeFetcher(fake_trees)))
    monkeypatch.setattr(corpus, "convert_clip", real_convert)
    assert not (out / "manifest.jsonl").exists()
    done = {p: p.stat().st_mtime_ns for p in (out / "audio").rglob("*.flac")}
    assert len(done) == 9
    stale = out / "audio" / "tuxpaint-stamps-default" / ".x.flac.abc.part"  # a write cut off by the kill
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a file")

    build_corpus(options(out, FakeFetcher(fake_trees)))
    assert not stale.exists()
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # finished files not redone
    assert (out / "manifest.jsonl").read_text() == (ref_out / "manifest.jsonl").read_text()


def test_parallel_jobs_give_the_same_corpus(built, fake_trees, tmp_path):
    ref_out, _, _ = built
    build_corpus(options(tmp_path / "j2", FakeFetcher(fake_trees), jobs=2))
    assert (tmp_path / "j2" / "manifest.jsonl").read_text() == (ref_out / "manifest.jsonl").read_text()


def test_synthetic_entries_stay_in_train(fake_trees, tmp_path):
    def fake_synth(hours, out_dir, sample_rate, seed, jobs, progress):
        path = Path(out_dir) / "audio" / "mbrola" / "us1" / "000000.flac"
        path.parent.mkdir(parents=True)
        sf.write(path, np.full(sample_rate * 2, 0.1, np.float32), sample_rate)
        return [ManifestEntry(path=str(path), duration=2.0, speaker="mbrola-us1", language="en",
                              source="mbrola", license="MBROLA", synthetic=True)]

    build_corpus(options(tmp_path, FakeFetcher(fake_trees), synthetic_hours=0.01, synthesize=fake_synth))
    syn = [e for e in read_manifest(tmp_path / "manifest.jsonl") if e.synthetic]
    assert len(syn) == 1 and syn[0].split == "train"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["hours_per_split_and_kind"]["train (synthetic)"] == pytest.approx(2 / 3600, abs=1e-4)


def test_errors_are_clear(fake_trees, tmp_path):
    build_corpus(options(tmp_path / "a", FakeFetcher(fake_trees), packages=PACKAGES[:1]))
    with pytest.raises(HificodecError, match="16000 Hz"):
        build_corpus(options(tmp_path / "a", FakeFetcher(fake_trees), packages=PACKAGES[:1], sample_rate=24000))
    with pytest.raises(HificodecError, match="sample-rate"):
        build_corpus(options(tmp_path / "b", FakeFetcher(fake_trees), sample_rate=22050))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HificodecError, match="festvox-ru: no speech files"):
        build_corpus(options(tmp_path / "c", lambda pkg, work: empty, packages=PACKAGES[:1]))
