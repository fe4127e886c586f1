import math

import pytest
import torch

from hificodec.dsp.mel import MelResolution
from hificodec.train import losses as L


@pytest.fixture
def noise():
    return 0.3 * torch.randn(2, 1, 4000)


RES = [MelResolution(512, 128, 512, n_mels=40), MelResolution(256, 64, 256, n_mels=20, weight=0.5)]


def test_waveform_losses(noise):
    assert L.waveform_l1(noise, noise) == 0
    assert math.isclose(float(L.waveform_l1(noise + 0.1, noise)), 0.1, rel_tol=1e-5)
    assert math.isclose(float(L.waveform_mse(noise + 0.1, noise)), 0.01, rel_tol=1e-4)


def test_log_mel_loss_of_a_doubled_signal_is_log2_times_weights(noise):
    assert float(L.multi_resolution_mel_loss(noise, noise, 16000, RES)) == 0
    # mel is linear in amplitude, so log-mel shifts by log 2 everywhere (above the floor)
    value = float(L.multi_resolution_mel_loss(2 * noise, noise, 16000, RES))
    assert math.isclose(value, 1.5 * math.log(2), rel_tol=1e-3)


def test_encodec_style_mel_loss(noise):
    res = [MelResolution(256, 64, 256, n_mels=16, power=2.0)]
    value = float(L.multi_resolution_mel_loss(2 * noise, noise, 16000, res, style="l1_log_rms"))
    lin = float((L.mel_spectrogram(2 * noise, 16000, res[0]) - L.mel_spectrogram(noise, 16000, res[0])).abs().mean())
    # power mel quadruples: RMS of the log difference is log 4, scaled by sqrt(n_fft / 2)
    assert math.isclose(value, lin + math.sqrt(128) * math.log(4), rel_tol=1e-3)
    with pytest.raises(ValueError, match="unknown mel loss style"):
        L.multi_resolution_mel_loss(noise, noise, 16000, res, style="nope")


def test_stft_loss_and_its_phase_aware_term(noise):
    res = [L.STFTResolution(512, 128, 512)]
    doubled = float(L.multi_resolution_stft_loss(2 * noise, noise, res))
    assert math.isclose(doubled, 1.0 + math.log(2), rel_tol=1e-3)  # convergence 1 + log-magnitude log 2
    # a polarity flip keeps every magnitude: only the complex term sees it
    flipped = -noise
    assert float(L.multi_resolution_stft_loss(flipped, noise, res)) < 1e-5
    assert float(L.multi_resolution_stft_loss(flipped, noise, res, use_complex=True)) > 0.1


def test_phase_loss_sees_what_magnitude_losses_cannot(noise):
    res = [L.STFTResolution(512, 128, 512), L.STFTResolution(256, 64, 256, weight=0.5)]
    assert float(L.multi_resolution_phase_loss(noise, noise, res)) == 0
    # a gain change keeps every phase
    assert float(L.multi_resolution_phase_loss(3 * noise, noise, res)) < 1e-4
    # a polarity flip is a pi error in every instantaneous phase, while phase differences
    # (group delay, instantaneous frequency) are untouched: pi x the summed weights
    assert math.isclose(float(L.multi_resolution_phase_loss(-noise, noise, res)), 1.5 * math.pi, rel_tol=1e-3)
    # unrelated audio is far off in all three terms; the gradient is finite
    other = (0.3 * torch.randn_like(noise)).requires_grad_()
    value = L.multi_resolution_phase_loss(other, noise, res, weighted=False)
    assert float(value.detach()) > 1.5 * 3 * 1.2  # random angles: mean |wrapped difference| = pi / 2 per term
    value.backward()
    assert torch.isfinite(other.grad).all() and other.grad.abs().sum() > 0
    assert math.isclose(float(L.anti_wrap(torch.tensor(2 * math.pi + 0.25))), 0.25, rel_tol=1e-5)


def test_adversarial_losses_reach_zero_at_their_targets():
    ones, zeros = [torch.ones(3, 5)], [torch.zeros(3, 5)]
    assert float(L.lsgan_generator_loss(ones)) == 0 and float(L.lsgan_generator_loss(zeros)) == 1
    assert float(L.lsgan_discriminator_loss(ones, zeros)) == 0
    assert float(L.lsgan_discriminator_loss(zeros, ones)) == 2
    assert float(L.hinge_generator_loss([torch.full((3,), 2.0)])) == 0
    assert float(L.hinge_discriminator_loss([torch.full((3,), 1.5)], [torch.full((3,), -1.5)])) == 0
    assert float(L.hinge_discriminator_loss([torch.zeros(3)], [torch.zeros(3)])) == 2
    gen, disc = L.adversarial_losses("hinge")
    assert gen is L.hinge_generator_loss and disc is L.hinge_discriminator_loss
    with pytest.raises(ValueError):
        L.adversarial_losses("wgan")


def test_feature_matching_plain_and_relative():
    real = [[torch.randn(2, 4, 8), torch.randn(2, 8, 4)]]
    fake = [[r + 0.5 for r in real[0]]]
    assert float(L.feature_matching_loss(real, real)) == 0
    assert math.isclose(float(L.feature_matching_loss(real, fake)), 1.0, rel_tol=1e-5)  # 2 layers x 0.5
    rel = float(L.relative_feature_matching_loss(real, fake))
    scaled = float(L.relative_feature_matching_loss([[10 * r for r in real[0]]], [[10 * f for f in fake[0]]]))
    assert math.isclose(rel, scaled, rel_tol=1e-4)  # invariant to the features' scale
    # gradients flow to the fake features only (real ones are targets)
    f = [[x.clone().requires_grad_() for x in fake[0]]]
    r = [[x.clone().requires_grad_() for x in real[0]]]
    L.feature_matching_loss(r, f).backward()
    assert f[0][0].grad is not None and r[0][0].grad is None
    assert float(L.logit_matching_loss([torch.zeros(3)], [torch.ones(3)])) == 1.0


def test_pitch_losses_measure_octaves_on_voiced_frames_only():
    from hificodec.dsp.pitch import PitchTrack

    target = PitchTrack(
        f0=torch.tensor([[100.0, 200.0, 0.0]]), voiced=torch.tensor([[True, True, False]]),
        periodicity=torch.ones(1, 3),
    )
    exact = torch.tensor([[[0.0, 1.0, 5.0], [20.0, 20.0, -20.0]]])  # log2(f0 / 100); unvoiced f0 ignored
    losses = L.pitch_losses(exact, target)
    assert float(losses["f0"]) == pytest.approx(0.0, abs=1e-6)
    assert float(losses["voicing"]) < 1e-6
    octave_up = exact.clone()
    octave_up[:, 0] += 1.0
    assert float(L.pitch_losses(octave_up, target)["f0"]) == pytest.approx(1.0)
    flipped = exact.clone()
    flipped[:, 1] *= -1
    assert float(L.pitch_losses(flipped, target)["voicing"]) == pytest.approx(20.0, rel=1e-3)
    # nothing voiced: no f0 term at all rather than a division by zero
    silent = PitchTrack(f0=torch.zeros(1, 3), voiced=torch.zeros(1, 3, dtype=torch.bool), periodicity=torch.zeros(1, 3))
    assert float(L.pitch_losses(exact, silent)["f0"]) == 0.0


def test_shared_stft_of_clips_of_different_lengths():
    """[fake; real] in one transform needs equal lengths; otherwise each gets its own, with the same values."""
    fake, real = torch.randn(2, 1, 3000), torch.randn(2, 1, 2800)
    s_fake, s_real = L.SharedSTFT(fake, real)(256, 64, 256)
    assert torch.allclose(s_fake, L.stft(fake, 256, 64, 256)) and torch.allclose(s_real, L.stft(real, 256, 64, 256))
    same = L.SharedSTFT(fake, fake[..., :3000] * 0.5)
    a, b = same(256, 64, 256)
    assert torch.allclose(a, L.stft(fake, 256, 64, 256), atol=1e-5) and same(256, 64, 256)[0] is a  # cached
