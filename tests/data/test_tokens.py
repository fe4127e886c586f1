"""Tokens for language-model training: tokens.json's layout and model reference, the token manifest's
text, `hificodec decode x.npy` back to audio, and TokenDataset / collate_tokens."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

import hificodec
from hificodec.cli import main
from hificodec.data.manifest import read_manifest
from hificodec.data.tokens import PAD, TokenDataset, collate_tokens, read_token_info
from hificodec.detokenize import decode_tokens
from hificodec.errors import HificodecError
from hificodec.tokenize import tokenize
from tiny_codecs import coding_model, tiny_preset
from tiny_corpora import make_libritts


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    """A tiny LibriTTS tree -> split manifests -> tokens from a saved tiny HiFi-Codec (2 groups x 2 stages)."""
    base = tmp_path_factory.mktemp("tokens")
    make_libritts(base / "LibriTTS", per_speaker=2, sr=16000)
    model_dir = hificodec.save(coding_model(tiny_preset("tiny-hificodec")), base / "my-model")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(base / "cache"))
        assert main(["data", "manifest", str(base / "LibriTTS"), "-o", str(base / "m"), "--no-progress"]) == 0
    assert main(["tokenize", str(base / "m" / "manifest.jsonl"), "--out", str(base / "tok"), "--model",
                 str(model_dir), "--workers", "0", "--device", "cpu", "-q"]) == 0  # fmt: skip
    return base


def test_tokens_json_has_the_layout_and_a_loadable_model(tokens):
    info = json.loads((tokens / "tok" / "tokens.json").read_text())
    assert (info["groups"], info["stages"], info["num_codebooks"], info["codebook_size"]) == (2, 2, 4, 64)
    assert info["frame_rate"] == 50 and info["code_order"].startswith("stage-major")
    assert info["model"] == str((tokens / "my-model").resolve()) and info["model_name"] == "tiny-hificodec"
    loaded = hificodec.load(info["model"])  # the reference opens the model that made the tokens
    assert hificodec.checkpoint.model_hash(loaded) == info["model_hash"]


def test_token_manifest_keeps_text_speaker_and_split(tokens):
    entries = read_manifest(tokens / "tok" / "manifest.jsonl")
    assert len(entries) == 12 and all(e.text and e.speaker and e.split for e in entries)
    e = next(e for e in entries if e.path.endswith("19_100_000001_000000.wav"))
    assert (e.text, e.speaker, e.split) == ("Speaker 19 says line 1.", "libritts-19", "train")


def test_decode_npy_through_the_cli_round_trip(tokens, capsys):
    entry = read_manifest(tokens / "tok" / "manifest.jsonl")[0]
    npy = tokens / "tok" / entry.extra["codes"]
    out = tokens / "back.wav"
    assert main(["decode", str(npy), "-o", str(out), "--device", "cpu"]) == 0  # model from tokens.json
    assert "s of tokens, 16000 Hz" in capsys.readouterr().out
    audio, sr = sf.read(out, dtype="float32")
    model = hificodec.load(tokens / "my-model")
    codes = np.load(npy)
    assert sr == 16000 and audio.shape == (codes.shape[1] * model.hop_length,)
    with torch.inference_mode():
        expected = model.decode(torch.from_numpy(codes.astype(np.int64))[None])[0, 0].numpy()
    np.testing.assert_allclose(audio, expected, atol=1e-4)  # 16-bit WAV
    assert main(["decode", str(npy), "-o", str(tokens / "back24.flac"), "--sample-rate", "24000",
                 "--model", str(tokens / "my-model")]) == 0  # fmt: skip
    assert sf.info(tokens / "back24.flac").samplerate == 24000


def test_decode_npy_errors_are_one_line(tokens, tmp_path, capsys):
    npy = next((tokens / "tok" / "codes").rglob("*.npy"))
    other = hificodec.save(coding_model(tiny_preset("tiny-hificodec"), seed=1), tmp_path / "other")
    assert main(["decode", str(npy), "-o", str(tmp_path / "x.wav"), "--model", str(other)]) == 1
    err = capsys.readouterr().err
    assert "these tokens were made by 'tiny-hificodec'" in err and len(err.strip().splitlines()) == 1
    loose = tmp_path / "loose.npy"
    np.save(loose, np.load(npy))
    assert main(["decode", str(loose), "-o", str(tmp_path / "y.wav")]) == 1
    assert "no tokens.json in its folder or above to name the model; pass --model" in capsys.readouterr().err
    assert main(["decode", str(loose), "-o", str(tmp_path / "y.wav"), "--model", str(tokens / "my-model")]) == 0
    np.save(loose, np.full((4, 3), 64, np.int16))
    with pytest.raises(HificodecError, match="codes outside 0..63"):
        decode_tokens(loose, tokens / "my-model")
    np.save(loose, np.zeros((3, 3), np.int16))
    with pytest.raises(HificodecError, match="3 codebooks"):
        decode_tokens(loose, tokens / "my-model")


def test_token_dataset_and_collate(tokens):
    ds = TokenDataset(tokens / "tok", split="train")
    assert len(ds) == 8 and ds.info["groups"] == 2
    item = ds[0]
    assert item.codes.dtype == torch.int64 and item.codes.shape[0] == 4
    assert item.text.startswith("Speaker ") and item.speaker.startswith("libritts-")
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_tokens)
    batch = next(iter(loader))
    lengths = [ds[i].codes.shape[1] for i in range(3)]
    assert batch.codes.shape == (3, 4, max(lengths)) and batch.lengths.tolist() == lengths
    for b in range(3):
        torch.testing.assert_close(batch.codes[b, :, : lengths[b]], ds[b].codes)
        assert (batch.codes[b, :, lengths[b]:] == PAD).all()
    assert batch.texts == [ds[i].text for i in range(3)] and batch.speakers == [ds[i].speaker for i in range(3)]
    # the coarse stage only: the first `groups` codebooks
    coarse = TokenDataset(tokens / "tok" / "manifest.jsonl", num_codebooks=2)
    assert len(coarse) == 12 and coarse[0].codes.shape[0] == 2
    with pytest.raises(HificodecError, match="multiple of 2 up to 4, got 3"):
        TokenDataset(tokens / "tok", num_codebooks=3)
    with pytest.raises(HificodecError, match="no tokens.json"):
        TokenDataset(tokens / "m")


def test_token_dataset_reads_the_shards_of_a_sharded_run(tokens, tmp_path):
    shutil.copytree(tokens / "tok", tmp_path / "tok")
    lines = (tmp_path / "tok" / "manifest.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "tok" / "manifest.jsonl").unlink()
    for r in range(2):
        (tmp_path / "tok" / f"manifest.rank{r}-of-2.jsonl").write_text("".join(lines[r::2]))
    ds = TokenDataset(tmp_path / "tok")
    assert len(ds) == 12 and sorted(e.extra["codes"] for e in ds.entries) == sorted(
        e.extra["codes"] for e in TokenDataset(tokens / "tok").entries)
    first = np.load(tmp_path / "tok" / ds.entries[0].extra["codes"])
    torch.testing.assert_close(ds[0].codes, torch.from_numpy(first).long())


def test_older_tokens_json_is_read_and_brought_up_to_date(tokens, tmp_path):
    """A folder tokenized before tokens.json held the layout resumes, and its tokens.json is rewritten."""
    info_path = tokens / "tok" / "tokens.json"
    info = json.loads(info_path.read_text())
    old = {k: v for k, v in info.items() if k not in ("groups", "stages", "code_order", "codes_shape", "model_name")}
    old["model"] = "tiny-hificodec"  # what it recorded then: a name hificodec.load cannot open
    info_path.write_text(json.dumps(old))
    assert read_token_info(info_path)["groups"] == 1  # no grouping known
    stats = tokenize(hificodec.load(tokens / "my-model"), tokens / "m" / "manifest.jsonl", tokens / "tok")
    assert stats.skipped == 12 and stats.encoded == 0
    assert json.loads(info_path.read_text()) == info
