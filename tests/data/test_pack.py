"""Packing a balanced, size-limited subset of a manifest into a tar."""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from collections import defaultdict

import numpy as np
import pytest
import soundfile as sf

from hificodec.cli import data_cmd
from hificodec.data.manifest import ManifestEntry, write_manifest
from hificodec.data.pack import pack_manifest
from hificodec.errors import HificodecError

SR = 16000


@pytest.fixture
def corpus(tmp_path):
    """3 sources: 'big' has 3 speakers x 12 files, 'small' 1 speaker x 4 files (WAV), 'syn' synthetic."""
    rng = np.random.default_rng(0)
    entries = []
    layout = [("big", f"b{s}", 12, ".flac", False) for s in range(3)]
    layout += [("small", "s0", 4, ".wav", False), ("syn", "tts", 10, ".flac", True)]
    for source, spk, n, ext, synthetic in layout:
        for i in range(n):
            path = tmp_path / "audio" / source / spk / f"{i:03d}{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            x = (0.1 * rng.standard_normal(SR)).astype(np.float32)  # 1 s of noise: FLAC barely compresses it
            sf.write(path, x, SR, subtype="PCM_16")
            entries.append(ManifestEntry(path=str(path), duration=1.0, speaker=spk, source=source,
                                         split="train" if i % 4 else "valid", synthetic=synthetic))
    manifest = tmp_path / "manifest.jsonl"
    write_manifest(manifest, entries)
    return manifest


def _members(tar_path):
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
        manifest = [json.loads(ln) for ln in tar.extractfile("manifest.jsonl").read().decode().splitlines()]
        blobs = {m["path"]: tar.extractfile(m["path"]).read() for m in manifest}
    return names, manifest, blobs


def test_pack_respects_limit_and_balances(corpus, tmp_path):
    out = tmp_path / "p.tar"
    result = pack_manifest(corpus, out, max_mib=0.4, real_only=True)
    assert out.stat().st_size <= 0.4 * 2**20 and out.stat().st_size == result.tar_bytes
    names, manifest, blobs = _members(out)
    assert names[0] == "manifest.jsonl" and set(names[1:]) == set(blobs)
    secs = defaultdict(float)
    for m in manifest:
        secs[m["source"]] += m["duration"]
    # 'small' has only 4 s; after it runs out the rest goes to 'big', spread over its speakers
    assert secs["small"] == 4 and "syn" not in secs and secs["big"] > 4
    spk = defaultdict(float)
    for m in manifest:
        spk[m["speaker"]] += m["duration"] if m["source"] == "big" else 0
    big = [spk[f"b{s}"] for s in range(3)]
    assert max(big) - min(big) <= 1.0
    # room for at most one more file: the selection filled the budget
    assert out.stat().st_size + 2 * 33000 > 0.4 * 2**20


def test_pack_content_is_lossless_and_deterministic(corpus, tmp_path):
    pack_manifest(corpus, tmp_path / "a.tar", max_mib=0.3, seed=3)
    pack_manifest(corpus, tmp_path / "b.tar", max_mib=0.3, seed=3)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    _, manifest, blobs = _members(tmp_path / "a.tar")
    originals = {(e["source"], e["speaker"]) for e in manifest}
    assert ("syn", "tts") in originals  # synthetic kept unless real_only
    for m in manifest:
        packed, sr = sf.read(io.BytesIO(blobs[m["path"]]), dtype="int16")
        assert m["path"].endswith(".flac") and sr == SR
        assert sf.info(io.BytesIO(blobs[m["path"]])).format == "FLAC"
    wav_entry = next(m for m in manifest if m["source"] == "small")
    packed, _ = sf.read(io.BytesIO(blobs[wav_entry["path"]]), dtype="int16")
    candidates = [sf.read(p, dtype="int16")[0] for p in sorted((tmp_path / "audio/small/s0").glob("*.wav"))]
    assert any(np.array_equal(packed, c) for c in candidates)


def test_pack_split_filter_and_cli(corpus, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    data_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "pack", str(corpus), str(tmp_path / "v.tar"), "--max-mib", "1",
                              "--split", "valid"])
    assert args.func(args) == 0
    _, manifest, _ = _members(tmp_path / "v.tar")
    assert len(manifest) == 3 * 3 + 1 + 3 and {m["split"] for m in manifest} == {"valid"}
    assert "13 of 13 files" in capsys.readouterr().out


def test_pack_errors(corpus, tmp_path):
    with pytest.raises(HificodecError, match="too small"):
        pack_manifest(corpus, tmp_path / "x.tar", max_mib=0.005)
    with pytest.raises(HificodecError, match="no file .* fits"):
        pack_manifest(corpus, tmp_path / "x.tar", max_mib=0.03)
    assert not (tmp_path / "x.tar").exists()
    next((tmp_path / "audio" / "small" / "s0").glob("*.wav")).unlink()
    with pytest.raises(HificodecError, match="missing"):
        pack_manifest(corpus, tmp_path / "x.tar", max_mib=1)
