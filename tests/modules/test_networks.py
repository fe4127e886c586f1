import math

import pytest
import torch

from hificodec.modules.hifigan import HiFiGANEncoder, HiFiGANGenerator
from hificodec.modules.seanet import SEANetDecoder, SEANetEncoder
from hificodec.modules.vocos import ISTFTHead, VocosDecoder


def test_hifigan_encoder_decoder_shapes():
    enc = HiFiGANEncoder(
        out_channels=16,
        channels=[4, 4, 8, 8, 16],
        strides=[2, 4, 5, 8],
        kernel_sizes=[4, 8, 11, 16],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1]],
        norm_group_size=4,
    )
    dec = HiFiGANGenerator(
        in_channels=16, upsample_initial_channel=16, resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]]
    )
    assert enc.hop_length == dec.hop_length == 320
    z = enc(torch.randn(2, 1, 3200))
    assert z.shape == (2, 16, 10)
    y = dec(z)
    assert y.shape == (2, 1, 3200) and y.abs().max() <= 1.0  # tanh output


def test_seanet_shapes_with_lstm():
    enc = SEANetEncoder(dimension=8, n_filters=4, ratios=[6, 5, 4, 2], lstm=1)
    dec = SEANetDecoder(dimension=8, n_filters=4, ratios=[6, 5, 4, 2], lstm=1)
    assert enc.hop_length == 240
    z = enc(torch.randn(1, 1, 2400))
    assert z.shape == (1, 8, 10)
    assert dec(z).shape == (1, 1, 2400)


def test_causal_seanet_output_ignores_future():
    enc = SEANetEncoder(dimension=8, n_filters=4, ratios=[4, 2], lstm=1, causal=True)
    x = torch.randn(1, 1, 800)
    x2 = x.clone()
    x2[..., 400:] = 0
    # frames fully before sample 400 (hop 8) are identical
    assert torch.allclose(enc(x)[..., :50], enc(x2)[..., :50], atol=1e-6)


def test_vocos_decoder_length():
    dec = VocosDecoder(in_channels=8, head=ISTFTHead(16, 1280, 320), dim=16, hidden_dim=32, num_layers=2)
    assert dec.hop_length == 320 and dec.frame_period == 1 and not dec.uses_excitation
    assert dec(torch.randn(2, 8, 7)).shape == (2, 1, 7 * 320)
    with pytest.raises(ValueError, match="16 channels"):
        VocosDecoder(in_channels=8, head=ISTFTHead(16, 1280, 320), dim=32)


def _one_bin_head(phase_advance: bool, bin_index: int) -> ISTFTHead:
    """A head whose output is one bin at constant magnitude and predicted phase 0 in every frame."""
    head = ISTFTHead(dim=4, n_fft=64, hop_length=16, phase_advance=phase_advance)
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.fill_(-20.0)  # log-magnitude ~0 everywhere ...
        head.out.bias[bin_index] = 0.0  # ... except one bin
        head.out.bias[33:] = 0.0  # phase 0
    return head


def test_phase_advance_head_makes_constant_features_a_coherent_sinusoid():
    frames, k = 40, 5  # bin 5 of 64 at hop 16: 1.25 cycles per hop, so the phase must advance
    x = torch.zeros(1, 4, frames)
    t = torch.arange(frames * 16, dtype=torch.float32)
    sine = torch.cos(2 * math.pi * k * t / 64)
    mid = slice(64, (frames - 4) * 16)  # away from the padded edges

    def correlation(head: ISTFTHead) -> float:
        y = head(x)[0, 0, mid]
        return float(torch.nn.functional.cosine_similarity(y, sine[mid], dim=0))

    # frames are centred, so their phase reference sits n_fft / 2 before the centre: a sign of (-1)^k
    assert correlation(_one_bin_head(True, k)) < -0.99
    assert abs(correlation(_one_bin_head(False, k))) < 0.5  # phase 0 every frame: frames cancel
    head = _one_bin_head(True, k)
    assert head.frame_period == 4
    assert torch.equal(head.advance(9, torch.device("cpu"))[:, 4:8], head.advance(9, torch.device("cpu"))[:, :4])


def test_excitation_head_starts_silent_and_adds_the_shaped_excitation():
    from hificodec.dsp.oscillator import harmonic_excitation
    from hificodec.dsp.pitch import estimate_f0

    torch.manual_seed(0)
    plain = ISTFTHead(dim=8, n_fft=1280, hop_length=320, phase_advance=True)
    excited = ISTFTHead(dim=8, n_fft=1280, hop_length=320, phase_advance=True, excitation=True)
    excited.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(1, 8, 50)
    source = harmonic_excitation(torch.full((1, 50), 150.0), torch.ones(1, 50), 16000, 320)  # 150 Hz voiced
    with torch.no_grad():
        assert torch.allclose(excited(x, source), plain(x), atol=1e-6)  # zero gain: the plain head's output
        excited.out.bias[: 641].fill_(-20.0)  # silence the predicted spectrum ...
        excited.excitation_gain.bias.fill_(1e-2)  # ... and pass the oscillator through
        y = excited(x, source)
    track = estimate_f0(y, 16000, 320)
    assert bool(track.voiced[0, 3:-3].all())
    assert float((track.f0[0, 3:-3] - 150).abs().max()) < 1.5
    with pytest.raises(ValueError, match="pass the excitation signal"):
        excited(x)
    with pytest.raises(ValueError, match="no excitation gain"):
        plain(x, source)
