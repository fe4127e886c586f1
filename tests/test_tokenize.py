import json

import numpy as np
import pytest
import soundfile as sf
import torch

import hificodec
from hificodec import tokenize as tok
from hificodec.checkpoint import model_hash
from hificodec.data.manifest import read_manifest
from hificodec.errors import HificodecError
from tiny_codecs import assert_codes_vary, coding_model, tiny_preset


@pytest.fixture
def dataset(tmp_path):
    """11 clips of varied length and rate (some share a frame count), in a nested folder."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    (root / "spk1").mkdir(parents=True)
    lengths = [16000, 16100, 3000, 3100, 20000, 700, 16000, 9000, 9050, 12345, 5000]
    for i, n in enumerate(lengths):
        sr = 22050 if i == 9 else 16000
        x = (0.3 * rng.standard_normal(n)).astype(np.float32)
        sf.write(str(root / ("spk1" if i % 2 else "") / f"utt{i:02d}.wav"), x, sr, subtype="FLOAT")
    return root


def all_codes(out) -> dict[str, np.ndarray]:
    return {str(p.relative_to(out)): np.load(p) for p in sorted((out / "codes").rglob("*.npy"))}


@pytest.mark.parametrize("preset", ["tiny-hificodec", "tiny-encodec"])
def test_codes_do_not_depend_on_batching(dataset, tmp_path, preset):
    model = coding_model(tiny_preset(preset))
    alone = tok.tokenize(model, dataset, tmp_path / "b1", batch_size=1)
    batched = tok.tokenize(model, dataset, tmp_path / "b8", batch_size=8, workers=1)
    assert batched.batches < alone.batches == 11
    a, b = all_codes(tmp_path / "b1"), all_codes(tmp_path / "b8")
    assert a.keys() == b.keys() and len(a) == 11
    assert_codes_vary(np.concatenate(list(a.values()), axis=-1))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert a[key].dtype == np.int16


@pytest.mark.parametrize("workers, threads", [(2, 1), (3, None), (1, 2)])  # (1, 2): spawned, not forked
def test_encoder_processes_write_the_same_codes(dataset, tmp_path, workers, threads):
    """Several encoding processes (each loading, encoding and saving its own batches) give the codes
    of one in-process run, file for file, and the same manifest."""
    model = coding_model(tiny_preset("tiny-hificodec"))
    here = tok.tokenize(model, dataset, tmp_path / "here", batch_size=2)
    spread = tok.tokenize(model, dataset, tmp_path / "spread", batch_size=2, workers=workers, threads=threads)
    assert (spread.encoded, spread.batches) == (here.encoded, here.batches)
    assert spread.audio_seconds == pytest.approx(here.audio_seconds)  # summed in another order
    a, b = all_codes(tmp_path / "here"), all_codes(tmp_path / "spread")
    assert a.keys() == b.keys() and len(a) == 11
    assert_codes_vary(np.concatenate(list(a.values()), axis=-1))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    manifest = (tmp_path / "spread" / "manifest.jsonl").read_text()
    assert manifest == (tmp_path / "here" / "manifest.jsonl").read_text().replace("/here/", "/spread/")


def test_naive_zero_padding_would_leak_for_groupnorm_encoders():
    """Why batches share a frame count: tiny-hificodec's encoder normalises over time (GroupNorm),
    so padding a clip to a longer batch member changes its codes."""
    model = hificodec.build(tiny_preset("tiny-hificodec")).eval()
    x = 0.3 * torch.randn(1, 1, 16000)
    with torch.inference_mode():
        alone = model.encode(x)
        padded = model.encode(torch.nn.functional.pad(x, (0, 16000)))[..., : alone.shape[-1]]
    assert not torch.equal(alone, padded)


def test_codes_equal_model_encode_and_manifest(dataset, tmp_path):
    model = coding_model(tiny_preset("tiny-encodec"))
    tok.tokenize(model, dataset, tmp_path / "out", batch_size=4)
    entries = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert len(entries) == 11
    assert_codes_vary(np.concatenate([np.load(tmp_path / "out" / e.extra["codes"]) for e in entries], axis=-1))
    info = json.loads((tmp_path / "out" / "tokens.json").read_text())
    assert info["model_hash"] == model_hash(model) and info["num_codebooks"] == 4
    # built in memory: nothing hificodec.load could open is recorded; one group of 4 residual stages
    assert info["model"] is None and (info["groups"], info["stages"]) == (1, 4)
    for e in entries:
        codes = np.load(tmp_path / "out" / e.extra["codes"])
        assert codes.shape == (4, e.extra["num_frames"])
        audio, _ = hificodec.audio.load_audio(e.path, sample_rate=16000, mono=True)
        with torch.inference_mode():
            expected = model.encode(torch.from_numpy(audio)[None])[0].numpy()
        np.testing.assert_array_equal(codes, expected[:, : codes.shape[1]])
        assert abs(codes.shape[1] - expected.shape[1]) <= 1  # resampled length rounding only


def test_resume_after_kill(dataset, tmp_path, monkeypatch):
    model = coding_model(tiny_preset("tiny-encodec"))
    out = tmp_path / "out"
    real_save = tok.save_codes
    calls = {"n": 0}

    def dying_save(path, codes):
        calls["n"] += 1
        if calls["n"] == 4:  # killed half-way through writing the 4th file
            with hificodec.files.atomic_output(path) as tmp, open(tmp, "wb") as f:
                f.write(b"\x93NUMPY partial")
                raise KeyboardInterrupt
        real_save(path, codes)

    monkeypatch.setattr(tok, "save_codes", dying_save)
    with pytest.raises(KeyboardInterrupt):
        tok.tokenize(model, dataset, out, batch_size=2)
    first = all_codes(out)  # every file present is complete
    assert len(first) == 3 and not (out / "manifest.jsonl").exists()
    # a SIGKILL leaves a temp file behind; the rerun removes it
    stale = out / "codes" / "spk1" / ".utt01.npy.abc123.part"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"junk")
    monkeypatch.setattr(tok, "save_codes", real_save)
    stats = tok.tokenize(model, dataset, out, batch_size=2)
    assert (stats.skipped, stats.encoded) == (3, 8)
    assert not list(out.rglob("*.part"))
    clean = tok.tokenize(model, dataset, tmp_path / "clean", batch_size=2)
    assert clean.encoded == 11
    resumed, expected = all_codes(out), all_codes(tmp_path / "clean")
    assert resumed.keys() == expected.keys()
    assert_codes_vary(np.concatenate(list(expected.values()), axis=-1))
    for key in expected:
        np.testing.assert_array_equal(resumed[key], expected[key])
    assert len(read_manifest(out / "manifest.jsonl")) == 11


def test_shards_partition_the_dataset(dataset, tmp_path, monkeypatch):
    model = hificodec.build(tiny_preset("tiny-encodec")).eval()
    out = tmp_path / "out"
    seen = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        stats = tok.tokenize(model, dataset, out)
        entries = read_manifest(out / f"manifest.rank{rank}-of-3.jsonl")
        assert len(entries) == stats.files == stats.encoded
        seen += [e.path for e in entries]
    assert len(seen) == len(set(seen)) == 11
    assert len(all_codes(out)) == 11


def test_other_model_in_same_folder_is_refused(dataset, tmp_path):
    tok.tokenize(hificodec.build(tiny_preset("tiny-encodec")).eval(), dataset, tmp_path / "out")
    with pytest.raises(HificodecError, match="another model"):
        tok.tokenize(hificodec.build(tiny_preset("tiny-hificodec")).eval(), dataset, tmp_path / "out")


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_files(dataset, tmp_path, workers):
    (dataset / "broken.wav").write_text("not audio")
    model = hificodec.build(tiny_preset("tiny-encodec")).eval()
    with pytest.raises(HificodecError, match="broken.wav.*--skip-errors"):
        tok.tokenize(model, dataset, tmp_path / "a", workers=workers)
    stats = tok.tokenize(model, dataset, tmp_path / "b", skip_errors=True, workers=workers)
    assert stats.encoded == 11 and len(stats.failed) == 1 and "broken.wav" in stats.failed[0]
    with pytest.raises(HificodecError, match="no such file"):
        tok.tokenize(model, tmp_path / "missing", tmp_path / "c")


def test_long_clips_are_chunked(tmp_path):
    model = coding_model(tiny_preset("tiny-encodec"))
    x = (0.3 * np.random.default_rng(1).standard_normal(16000 * 3)).astype(np.float32)
    sf.write(str(tmp_path / "long.wav"), x, 16000, subtype="FLOAT")
    tok.tokenize(model, tmp_path / "long.wav", tmp_path / "out", chunk_seconds=1.0)
    with torch.inference_mode():
        expected = model.encode(torch.from_numpy(x)[None, None])[0].numpy()
    assert_codes_vary(expected, min_distinct=16)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "codes" / "long.npy"), expected)


def test_plan_batches_respects_limits():
    items = [tok._Item(entry=None, out=None, key=str(i), num_samples=n, num_frames=-(-n // 320))  # type: ignore
             for i, n in enumerate([3200, 3200, 3190, 3200, 6400, 6400, 100])]  # fmt: skip
    batches = tok.plan_batches(items, batch_size=2, max_batch_seconds=100, sample_rate=16000)
    assert [[it.key for it in b] for b in batches] == [["4", "5"], ["0", "1"], ["2", "3"], ["6"]]
    capped = tok.plan_batches(items, batch_size=8, max_batch_seconds=0.5, sample_rate=16000)
    assert max(len(b) for b in capped) == 2  # 0.5 s of 0.2 s clips


def test_same_name_other_extension_is_refused(dataset, tmp_path):
    sf.write(str(dataset / "utt00.flac"), np.zeros(1000, np.float32), 16000)
    with pytest.raises(HificodecError, match="same output codes/utt00.npy"):
        tok.tokenize(hificodec.build(tiny_preset("tiny-encodec")).eval(), dataset, tmp_path / "out")


def test_damaged_output_is_redone(dataset, tmp_path):
    model = coding_model(tiny_preset("tiny-encodec"))
    tok.tokenize(model, dataset, tmp_path / "out")
    target = tmp_path / "out" / "codes" / "utt00.npy"
    good = np.load(target)
    assert_codes_vary(good)
    target.write_bytes(b"garbage")
    stats = tok.tokenize(model, dataset, tmp_path / "out")
    assert (stats.encoded, stats.skipped) == (1, 10)
    np.testing.assert_array_equal(np.load(target), good)
