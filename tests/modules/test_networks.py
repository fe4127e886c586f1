import math

import pytest
import torch

from hificodec.modules.griffin_lim import fast_griffin_lim
from hificodec.modules.hifigan import HiFiGANEncoder, HiFiGANGenerator
from hificodec.modules.seanet import SEANetDecoder, SEANetEncoder
from hificodec.modules.vocos import ISTFTHead, MagnitudeHead, VocosDecoder


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


def _voiced_test_signal(seconds: float = 0.5, sr: int = 16000) -> torch.Tensor:
    """Harmonics of a gliding 140-180 Hz pitch under a decaying envelope: speech-like structure."""
    t = torch.arange(int(seconds * sr)) / sr
    f0 = 140 + 40 * t / seconds
    phase = 2 * math.pi * torch.cumsum(f0 / sr, 0)
    return sum(torch.cos(h * phase) / h for h in range(1, 20)) * torch.exp(-2 * t) * 0.1


def test_fast_griffin_lim_recovers_a_consistent_phase():
    n_fft, hop = 256, 64
    window = torch.hann_window(n_fft)
    wav = _voiced_test_signal()
    mag = torch.stft(wav, n_fft, hop, window=window, return_complex=True).abs()

    def inconsistency(iterations: int) -> float:
        phase = fast_griffin_lim(mag, n_fft, hop, window, wav.shape[-1], iterations)
        y = torch.istft(torch.polar(mag, phase), n_fft, hop, window=window, length=wav.shape[-1])
        rebuilt = torch.stft(y, n_fft, hop, window=window, return_complex=True).abs()
        return float(torch.linalg.vector_norm(rebuilt - mag) / torch.linalg.vector_norm(mag))

    zero_phase, few, many = inconsistency(0), inconsistency(4), inconsistency(32)
    assert many < few < zero_phase
    assert many < 0.2  # measured 0.89 from zero phase, 0.28 after 4 iterations, 0.13 after 32
    batched = fast_griffin_lim(torch.stack([mag, mag]), n_fft, hop, window, wav.shape[-1], 3)
    assert torch.allclose(batched[0], batched[1])
    with pytest.raises(ValueError, match="iterations"):
        fast_griffin_lim(mag, n_fft, hop, window, wav.shape[-1], -1)


def test_magnitude_head_trains_its_magnitudes_through_a_fixed_phase():
    dec = VocosDecoder(in_channels=8, hop_length=320, dim=16, hidden_dim=32, num_layers=2, head="magnitude",
                       n_fft=640, stft_hop=160, griffin_lim_iterations=4, griffin_lim_train_iterations=1)
    head = dec.head
    assert isinstance(head, MagnitudeHead) and head.subframes == 2 and head.frame_period == 1
    z = torch.randn(2, 8, 7)
    assert head.log_magnitude(torch.randn(2, 16, 7)).shape == (2, 321, 14)
    dec.train()
    out = dec(z)
    assert out.shape == (2, 1, 7 * 320)
    out.pow(2).sum().backward()
    assert head.out.weight.grad is not None and head.out.weight.grad.abs().sum() > 0
    dec.eval()
    with torch.no_grad():
        first, again = dec(z), dec(z)
    assert torch.equal(first, again)  # zero initial phase: decoding is deterministic


def test_vocos_head_options_are_checked():
    with pytest.raises(ValueError, match="unknown vocos head"):
        VocosDecoder(in_channels=8, hop_length=320, head="mel")
    with pytest.raises(ValueError, match="istft head only"):
        VocosDecoder(in_channels=8, hop_length=320, head="magnitude", phase_advance=True)
    with pytest.raises(ValueError, match="must divide"):
        VocosDecoder(in_channels=8, hop_length=320, head="magnitude", stft_hop=150)


def test_excitation_head_starts_silent_and_follows_the_given_pitch():
    from hificodec.dsp.pitch import estimate_f0

    torch.manual_seed(0)
    plain = ISTFTHead(dim=8, n_fft=1280, hop_length=320, phase_advance=True)
    excited = ISTFTHead(dim=8, n_fft=1280, hop_length=320, phase_advance=True, sample_rate=16000)
    excited.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(1, 8, 50)
    pitch = torch.stack([torch.full((1, 50), math.log2(1.5)), torch.full((1, 50), 10.0)], dim=1)  # 150 Hz voiced
    with torch.no_grad():
        assert torch.allclose(excited(x, pitch), plain(x), atol=1e-6)  # zero gain: the plain head's output
        excited.out.bias[: 641].fill_(-20.0)  # silence the predicted spectrum ...
        excited.excitation_gain.bias.fill_(1e-2)  # ... and pass the oscillator through
        y = excited(x, pitch)
    track = estimate_f0(y, 16000, 320)
    assert bool(track.voiced[0, 3:-3].all())
    assert float((track.f0[0, 3:-3] - 150).abs().max()) < 1.5
    with pytest.raises(ValueError, match="pitch"):
        excited(x)
    with pytest.raises(ValueError, match="istft head"):
        VocosDecoder(in_channels=8, hop_length=320, head="magnitude", excitation=True, sample_rate=16000)
