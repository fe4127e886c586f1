"""The shipped default model loads offline and is a trained codec (not random weights)."""

import numpy as np
import pytest
import torch
from pystoi import stoi

import hificodec
from hificodec.audio import load_audio
from hificodec.demo import bundled_clip


def _stoi_of(model: hificodec.CodecModel) -> float:
    audio, sr = load_audio(bundled_clip(), sample_rate=model.sample_rate, mono=True)
    with torch.inference_mode():
        wav = torch.from_numpy(audio).unsqueeze(0)
        rec = model.decode(model.encode(wav), length=wav.shape[-1])[0, 0].numpy()
    return float(stoi(audio[0].astype(np.float64), rec.astype(np.float64), sr))


def test_default_model_ships_and_loads_offline():
    assert hificodec.DEFAULT_MODEL in hificodec.list_models()
    model = hificodec.load(hificodec.DEFAULT_MODEL)
    assert (model.sample_rate, model.frame_rate, model.num_codebooks, model.codebook_size) == (16000, 50, 4, 1024)
    assert model.bitrate == 2000
    assert model.config == {k: v for k, v in hificodec.build("hificodec-16k").config.items()}


@pytest.mark.slow
def test_default_model_is_trained():
    trained = _stoi_of(hificodec.load(hificodec.DEFAULT_MODEL))
    torch.manual_seed(0)
    untrained = _stoi_of(hificodec.build("hificodec-16k").eval())
    assert trained > untrained + 0.2, (trained, untrained)  # measured: 0.42 vs 0.07


def test_default_model_ships_a_discriminator_for_fine_tuning():
    """`train.init_from` on the shipped folder loads its discriminator (exported separately)."""
    import yaml

    from hificodec.checkpoint import load_state, load_state_into, pretrained_dir
    from hificodec.train.discriminators import build_discriminator

    folder = pretrained_dir() / hificodec.DEFAULT_MODEL / "discriminator"
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    disc = build_discriminator(config["discriminators"])
    assert disc is not None
    load_state_into(disc, load_state(folder / "discriminator.safetensors"), str(folder))  # strict: every tensor
    # trained, not freshly initialised: it tells the bundled real clip from its own codec output
    audio, _ = load_audio(bundled_clip(), sample_rate=16000, mono=True)
    model = hificodec.load(hificodec.DEFAULT_MODEL)
    with torch.inference_mode():
        real = torch.from_numpy(audio).unsqueeze(0)[..., :32000]
        fake = model.decode(model.encode(real), length=real.shape[-1])
        logits = disc.eval()(torch.cat([real, fake])).logits
    real_score = sum(float(x[0].mean()) for x in logits)
    fake_score = sum(float(x[1].mean()) for x in logits)
    assert real_score > fake_score, (real_score, fake_score)
