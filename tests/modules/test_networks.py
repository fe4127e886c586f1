import torch

from hificodec.modules.hifigan import HiFiGANEncoder, HiFiGANGenerator
from hificodec.modules.seanet import SEANetDecoder, SEANetEncoder
from hificodec.modules.vocos import VocosDecoder


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
    dec = VocosDecoder(in_channels=8, hop_length=320, dim=16, hidden_dim=32, num_layers=2)
    assert dec(torch.randn(2, 8, 7)).shape == (2, 1, 7 * 320)
