import torch

from hificodec.train.discriminators import (
    CombinedDiscriminator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    MultiScaleSTFTDiscriminator,
    build_discriminator,
)


def _x(b=2, t=3200):
    return 0.1 * torch.randn(b, 1, t)


def test_each_discriminator_has_one_output_per_sub_discriminator():
    cases = [
        (MultiPeriodDiscriminator(periods=(2, 3, 5), channels=(4, 8)), 3),
        (MultiScaleDiscriminator(scales=3, channels=4, max_channels=16), 3),
        (MultiScaleSTFTDiscriminator(n_ffts=(256, 128), filters=4), 2),
    ]
    for disc, n in cases:
        out = disc(_x())
        assert len(out.logits) == len(out.features) == n
        assert all(logit.shape[0] == 2 and logit.ndim == 2 for logit in out.logits)
        assert all(len(f) >= 3 for f in out.features)


def test_msstft_layout_follows_encodec():
    d = MultiScaleSTFTDiscriminator(n_ffts=(256,), filters=8).discriminators[0]
    spec = d.spectrogram(_x(1, 2048))
    # [B, real/imag, frames, freqs]: frames = 1 + (T - n_fft) / hop, freqs = n_fft / 2 + 1
    assert spec.shape == (1, 2, 1 + (2048 - 256) // 64, 129)
    out_logit, feats = d(_x(1, 2048))
    assert [f.shape[-1] for f in feats] == [129, 65, 33, 17, 17]  # stride 2 along frequency


def test_one_pass_over_real_and_fake_equals_two_passes():
    disc = CombinedDiscriminator(
        {"mpd": {"periods": [2, 3], "channels": [4, 8]}, "msstft": {"n_ffts": [128], "filters": 4}}
    )
    real, fake = _x(), _x()
    joint_real, joint_fake = disc(torch.cat([real, fake])).split(2)
    alone = disc(fake)
    for a, b in zip(joint_fake.logits, alone.logits):
        assert torch.allclose(a, b, atol=1e-5)
    assert len(joint_real.features) == len(alone.features) == 3


def test_gradients_reach_the_input_with_frozen_weights():
    disc = build_discriminator(
        {"msd": {"scales": 2, "channels": 4, "max_channels": 16}, "msstft": {"n_ffts": [128], "filters": 4}}
    )
    disc.requires_grad_(False)
    x = _x().requires_grad_()
    out = disc(x)
    sum(l.mean() for l in out.logits).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters())


def test_no_discriminator_config_means_generator_only():
    assert build_discriminator({}) is None
    try:
        build_discriminator({"wavenet": {}})
    except ValueError as e:
        assert "unknown discriminators" in str(e)
    else:
        raise AssertionError("expected ValueError")
