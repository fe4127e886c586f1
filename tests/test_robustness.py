"""Cases that once broke on some machine or some input, kept here so they stay fixed.

Each test's docstring names the case; the CLI tests check the exit code and the message, never a
traceback.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import hificodec
from hificodec.cli import main
from hificodec.config import load_config


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _write_wav(path, samples: int, sr: int = 16000, seed: int = 0):
    rng = np.random.default_rng(seed)
    sf.write(str(path), (0.1 * rng.standard_normal(samples)).astype(np.float32), sr, subtype="FLOAT")
    return path


# ---- short clips ------------------------------------------------------------------------------
def _magnitude_head_model() -> hificodec.CodecModel:
    """A small vocos decoder with the Griffin-Lim magnitude head (the hificodec-16k-mag recipe's)."""
    cfg = load_config("tiny-encodec")
    cfg.pop("format_version", None)
    cfg["decoder"] = {"type": "vocos", "dim": 16, "hidden_dim": 32, "num_layers": 1, "head": "magnitude"}
    return hificodec.build(cfg)


_SHORT_MODELS = {
    "shipped": lambda: hificodec.load(hificodec.DEFAULT_MODEL),
    "tiny-hificodec": lambda: hificodec.build("tiny-hificodec"),
    "tiny-encodec": lambda: hificodec.build("tiny-encodec"),
    "magnitude-head": _magnitude_head_model,
}


@pytest.mark.parametrize("which", list(_SHORT_MODELS))
def test_every_length_that_encodes_decodes(which):
    """Clips of <= 40 ms (1 or 2 code frames) encoded but the iSTFT head's reflect padding refused to
    decode them (RuntimeError: Padding size should be less than the corresponding input dimension)."""
    model = _SHORT_MODELS[which]().eval()
    hop = model.hop_length
    lengths = sorted({1, 2, hop // 2, hop - 1, hop, hop + 1, 2 * hop - 1, 2 * hop, 2 * hop + 1, 3 * hop - 1, 3 * hop})
    gen = torch.Generator().manual_seed(0)
    for n in lengths:
        wav = 0.1 * torch.randn(2, 1, n, generator=gen)
        with torch.inference_mode():
            codes = model.encode(wav)
            out = model.decode(codes, length=n)
        assert codes.shape[-1] == model.num_frames(n), n
        assert out.shape == (2, 1, n) and torch.isfinite(out).all(), n
        data = model.compress(wav[:, 0].numpy(), model.sample_rate)
        audio, sr = model.decompress(data)
        assert audio.shape == (2, n) and sr == model.sample_rate and np.isfinite(audio).all(), n


def test_short_clip_round_trips_through_the_cli(tmp_path, capsys):
    """`hificodec encode` of a 1-sample or 10 ms wav exited 0, and `decode` / `reconstruct` of it died with a
    traceback; `tokenize` wrote codes that could not be decoded."""
    for n in (1, 160, 320, 640):
        src = _write_wav(tmp_path / f"clip{n}.wav", n)
        code, _, err = run(["encode", src, "-q"], capsys)
        assert code == 0, err
        out = tmp_path / f"clip{n}.out.wav"
        code, _, err = run(["decode", tmp_path / f"clip{n}.hfc", "-o", out, "-q"], capsys)
        assert code == 0, err
        assert sf.info(str(out)).frames == n
        code, _, err = run(["reconstruct", src, "-q"], capsys)
        assert code == 0, err
        assert sf.info(str(tmp_path / f"clip{n}.reconstructed.wav")).frames == n
    data = tmp_path / "data"
    data.mkdir()
    _write_wav(data / "one.wav", 1)
    code, _, err = run(["tokenize", data, "--out", tmp_path / "tok", "-q"], capsys)
    assert code == 0, err
    codes = np.load(tmp_path / "tok" / "codes" / "one.npy")
    model = hificodec.load(hificodec.DEFAULT_MODEL)
    with torch.inference_mode():
        wav = model.decode(torch.from_numpy(codes.astype(np.int64))[None], length=1)
    assert wav.shape == (1, 1, 1) and torch.isfinite(wav).all()


def test_cached_windows_made_in_inference_mode_serve_training():
    """The STFT window and mel filterbank caches kept the tensors of their first caller: after an
    evaluation under torch.inference_mode, a training step in the same process failed with
    "Inference tensors cannot be saved for backward"."""
    from hificodec.train.mel import hann_window, mel_filterbank

    with torch.inference_mode():
        window = hann_window(777)
        bank = mel_filterbank(16000, 777, 13)
    assert not window.is_inference() and not bank.is_inference()
    x = torch.randn(1, 2000, requires_grad=True)
    spec = torch.stft(x, 777, 100, window=window, return_complex=True).abs()
    (bank @ spec).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
