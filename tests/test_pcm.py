"""Integer PCM, numpy arrays and float64 in the model API and the streaming API (hificodec.pcm): one
rule for both. Integer samples are scaled as audio files store them (they used to be coded as raw
amplitudes: 352 of 400 streamed codes differed from the same audio pushed as float)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hificodec.compress import compress
from hificodec.errors import AudioError
from hificodec.pcm import as_audio, as_codes
from tiny_codecs import assert_codes_vary, calibration_audio, coding_model, tiny_preset


@pytest.fixture(scope="module")
def setup():
    model = coding_model(tiny_preset("tiny-hificodec-16k-causal")).eval()
    x = calibration_audio(16000, seed=7, clips=1).reshape(-1)[:16000].numpy()
    pcm16 = np.round(x * 32767).astype(np.int16)
    with torch.no_grad():
        reference = model.encode(torch.from_numpy(pcm16.astype(np.float32) / 32768).view(1, 1, -1))
    assert_codes_vary(reference)
    return model, pcm16, reference


def _forms(pcm16: np.ndarray) -> dict[str, object]:
    """The same samples as every array a caller may hold (exactly: each scales back to pcm16 / 32768)."""
    return {
        "int16 numpy": pcm16, "int16 torch": torch.from_numpy(pcm16),
        "int32": pcm16.astype(np.int32) * 65536, "float64 numpy": pcm16.astype(np.float64) / 32768,
        "float64 torch": torch.from_numpy(pcm16.astype(np.float64) / 32768),
    }  # fmt: skip


def test_every_form_encodes_as_the_float_samples(setup):
    model, pcm16, reference = setup
    for name, wav in _forms(pcm16).items():
        shaped = wav.reshape(1, 1, -1)
        with torch.no_grad():
            codes = model.encode(shaped)
        assert torch.equal(codes, reference), name


def test_streamed_int16_equals_streamed_float(setup):
    model, pcm16, reference = setup
    for wav in (pcm16, torch.from_numpy(pcm16), pcm16.astype(np.float64) / 32768):
        enc = model.streaming_encoder()
        codes = torch.cat([enc.push(wav[:5000]), enc.push(wav[5000:]), enc.flush()], dim=-1)
        assert torch.equal(codes, reference)


def test_codes_as_numpy_decode(setup):
    model, _, reference = setup
    with torch.no_grad():
        whole = model.decode(reference)
        assert torch.equal(model.decode(reference.numpy().astype(np.int16)), whole)
    dec = model.streaming_decoder()
    streamed = torch.cat([dec.push(reference.numpy()), dec.flush()], dim=-1)
    assert streamed.shape[-1] >= whole.shape[-1]


def test_uint8_is_centred(setup):
    assert torch.equal(as_audio(np.array([0, 128, 255], np.uint8)), torch.tensor([-1.0, 0.0, 127 / 128]))
    assert torch.equal(as_audio(np.array([-32768, 0, 16384], np.int16)), torch.tensor([-1.0, 0.0, 0.5]))
    assert torch.equal(as_audio(torch.tensor([-(2**31), 2**30], dtype=torch.int32)), torch.tensor([-1.0, 0.5]))


@pytest.mark.parametrize("bad", [np.zeros(320, np.int64), np.zeros(320, bool), np.zeros(320, np.complex64),
                                 np.array(["a"] * 320), [0.0] * 320])  # fmt: skip
def test_samples_without_a_convention_are_refused_in_one_line(setup, bad):
    model = setup[0]
    for call in (lambda: model.encode(bad), lambda: model.streaming_encoder().push(bad)):
        with pytest.raises(AudioError) as e:
            call()
        assert "\n" not in str(e.value)


def test_float_codes_are_refused(setup):
    model, _, reference = setup
    with pytest.raises(AudioError, match="codes must be integers"):
        model.streaming_decoder().push(reference.float())
    with pytest.raises(AudioError, match="codes must be integers"):
        as_codes(reference.numpy().astype(np.float32))


def test_compress_scales_integer_pcm(setup):
    model, pcm16, _ = setup
    assert compress(model, pcm16, 16000, entropy=None) == compress(model, pcm16 / 32768, 16000, entropy=None)
