"""The shipped default model loads offline and is a trained codec (not random weights).

Its figures on the bundled clip are pinned in SHIPPED below and its codes in `pretrained_codes.json`,
the places to update when a new release replaces the weights: `PYTHONPATH=src python
tests/test_pretrained.py` prints the figures and rewrites the codes file for the installed model.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pystoi import stoi

import hificodec
from hificodec.audio import load_audio
from hificodec.demo import bundled_clip
from hificodec.eval.metrics import pesq_wb

#: hificodec-16k as shipped, on the bundled clip (6.9 s of speech): weights, codes of the first 3 s, and scores.
SHIPPED = {
    "weights_hash": "3541e98c91b0cee5",
    "stoi": 0.5276,
    "pesq_wb": 1.0856,
    "disc_real": 2.5866,
    "disc_fake": -1.3352,
}
#: allowed drift from float rounding on other CPUs (the figures are deterministic on one machine)
TOLERANCE = {"stoi": 0.01, "pesq_wb": 0.02, "disc_real": 0.05, "disc_fake": 0.05}
CODES_SECONDS = 3
CODES_FILE = Path(__file__).with_name("pretrained_codes.json")
#: codes equal to the pinned ones: a rounding tie on another CPU's kernels may flip a few, a change of the
#: encoder or quantizer flips many (zeroing the pitch-feature input, or halving the input level, leaves
#: 46-48 % equal)
MIN_CODES_EQUAL = 0.98


def _speech(model: hificodec.CodecModel) -> tuple[np.ndarray, int]:
    audio, sr = load_audio(bundled_clip(), sample_rate=model.sample_rate, mono=True)
    return audio, sr


def _stoi_of(model: hificodec.CodecModel) -> float:
    audio, sr = _speech(model)
    with torch.inference_mode():
        wav = torch.from_numpy(audio).unsqueeze(0)
        rec = model.decode(model.encode(wav), length=wav.shape[-1])[0, 0].numpy()
    return float(stoi(audio[0].astype(np.float64), rec.astype(np.float64), sr))


def _discriminator():
    import yaml

    from hificodec.checkpoint import load_state, load_state_into, pretrained_dir
    from hificodec.train.discriminators import build_discriminator

    folder = pretrained_dir() / hificodec.DEFAULT_MODEL / "discriminator"
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    disc = build_discriminator(config["discriminators"])
    assert disc is not None
    load_state_into(disc, load_state(folder / "discriminator.safetensors"), str(folder))  # strict: every tensor
    return disc.eval()


def measure() -> dict:
    """SHIPPED's figures for the installed default model."""
    model = hificodec.load(hificodec.DEFAULT_MODEL)
    audio, sr = _speech(model)
    wav = torch.from_numpy(audio).unsqueeze(0)
    with torch.inference_mode():
        codes = model.encode(wav)
        rec = model.decode(codes, length=wav.shape[-1])[0, 0].numpy()
        # the discriminator's mean logits, per sub-discriminator, on 2 s of the clip and its codec output
        real = wav[..., : 2 * sr]
        fake = model.decode(model.encode(real), length=real.shape[-1])
        logits = _discriminator()(torch.cat([real, fake])).logits
    first = codes[..., : round(CODES_SECONDS * model.frame_rate)].numpy().astype("<i2")
    return {
        "weights_hash": hificodec.weights_hash(model),
        "codes": first[0].tolist(),
        "stoi": round(float(stoi(audio[0].astype(np.float64), rec.astype(np.float64), sr)), 4),
        "pesq_wb": round(pesq_wb(audio[0], rec, sr), 4),
        "disc_real": round(sum(float(x[0].mean()) for x in logits), 4),
        "disc_fake": round(sum(float(x[1].mean()) for x in logits), 4),
        "disc_real_above_fake": [float(x[0].mean()) > float(x[1].mean()) for x in logits],
        "distinct_codes": [len(np.unique(row)) for row in first[0]],
    }


@pytest.fixture(scope="module")
def measured() -> dict:
    return measure()


def test_default_model_ships_and_loads_offline():
    assert hificodec.DEFAULT_MODEL in hificodec.list_models()
    model = hificodec.load(hificodec.DEFAULT_MODEL)
    assert (model.sample_rate, model.frame_rate, model.num_codebooks, model.codebook_size) == (16000, 50, 4, 1024)
    assert model.bitrate == 2000
    assert model.config == {k: v for k, v in hificodec.build("hificodec-16k").config.items()}


def test_shipped_model_is_the_pinned_release(measured):
    assert measured["weights_hash"] == SHIPPED["weights_hash"], (
        "the shipped weights changed: update SHIPPED from `PYTHONPATH=src python tests/test_pretrained.py`"
    )


def test_shipped_codes_are_pinned(measured):
    assert min(measured["distinct_codes"]) > 50  # of 150 frames: pinned codes that vary
    pinned = np.array(json.loads(CODES_FILE.read_text(encoding="utf-8")))
    equal = float((np.array(measured["codes"]) == pinned).mean())
    assert equal >= MIN_CODES_EQUAL, equal


def test_shipped_scores_are_pinned(measured):
    for key, tolerance in TOLERANCE.items():
        assert measured[key] == pytest.approx(SHIPPED[key], abs=tolerance), key


def test_default_model_ships_a_discriminator_for_fine_tuning(measured):
    """`train.init_from` on the shipped folder loads its discriminator (exported separately, loaded strictly);
    it is trained: every sub-discriminator scores the real clip above the codec's output."""
    assert all(measured["disc_real_above_fake"]), measured["disc_real_above_fake"]


@pytest.mark.slow
def test_default_model_is_trained():
    trained = _stoi_of(hificodec.load(hificodec.DEFAULT_MODEL))
    torch.manual_seed(0)
    untrained = _stoi_of(hificodec.build("hificodec-16k").eval())
    assert trained > untrained + 0.2, (trained, untrained)  # measured: 0.53 vs 0.07


if __name__ == "__main__":
    figures = measure()
    CODES_FILE.write_text(json.dumps(figures["codes"]) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in figures.items() if k in SHIPPED}, indent=4))
