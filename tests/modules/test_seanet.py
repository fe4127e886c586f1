"""SEANet encoder inference: the channels-last fast path against the plain one, and in-place activations
against out-of-place ones under autograd."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

import hificodec
from hificodec.audio import load_audio
from hificodec.modules.seanet import SEANetEncoder
from tiny_codecs import assert_codes_vary


@pytest.fixture
def plain_path(monkeypatch):
    def use(flag: bool) -> None:
        monkeypatch.setattr(SEANetEncoder, "channels_last_inference", flag)

    return use


def bundled_clip() -> torch.Tensor:
    from importlib import resources

    path = resources.files("hificodec") / "assets" / "speech-cs-16k.flac"
    audio, _ = load_audio(str(path), sample_rate=16000, mono=True)
    return torch.from_numpy(audio)[None]


def test_fast_path_gives_the_shipped_model_the_same_codes(plain_path):
    model = hificodec.load("hificodec-16k")
    wav = bundled_clip()
    batch = torch.cat([wav[..., :48000], wav[..., 48000:96000], 0.5 * wav[..., :48000]])
    with torch.inference_mode():
        plain_path(False)
        slow = [model.encode(wav), model.encode(batch), model.latent(wav)]
        plain_path(True)
        fast = [model.encode(wav), model.encode(batch), model.latent(wav)]
    assert_codes_vary(slow[0], min_distinct=50)
    assert torch.equal(slow[0], fast[0]) and torch.equal(slow[1], fast[1])
    # the latent differs by float rounding only (other summation order in the conv kernels)
    assert (slow[2] - fast[2]).abs().max() < 1e-4 * slow[2].abs().max()


@pytest.mark.parametrize("length", [1, 319, 3201])
def test_fast_path_handles_short_and_odd_inputs(plain_path, length):
    torch.manual_seed(0)
    encoder = SEANetEncoder(dimension=16, n_filters=4, ratios=[4, 2], lstm=0, bias=False).eval()
    x = 0.1 * torch.randn(2, 1, length)
    with torch.inference_mode():
        plain_path(False)
        slow = encoder(x)
        plain_path(True)
        fast = encoder(x)
    assert fast.shape == slow.shape and fast.is_contiguous()
    np.testing.assert_allclose(fast.numpy(), slow.numpy(), rtol=1e-5, atol=1e-6)


def test_in_place_activations_give_the_same_gradients():
    # equal up to rounding: the in-place ELU's backward reads its output (exp(x) - 1 + 1), the other its input
    torch.manual_seed(0)
    encoder = SEANetEncoder(dimension=16, n_filters=4, ratios=[4, 2], lstm=0)
    reference = copy.deepcopy(encoder)
    for module in reference.modules():
        if isinstance(module, nn.ELU):
            module.inplace = False
    assert any(isinstance(m, nn.ELU) and m.inplace for m in encoder.modules())
    x = 0.1 * torch.randn(2, 1, 800)
    for model in (encoder, reference):
        model(x).square().sum().backward()
    for (name, a), b in zip(encoder.named_parameters(), reference.parameters()):
        assert a.grad is not None and b.grad is not None, name
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6, msg=name)
