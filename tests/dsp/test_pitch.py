import math

import pytest
import torch

from hificodec.dsp.pitch import estimate_f0

SR = 16000


def _harmonic(f0: torch.Tensor, harmonics: int = 6) -> torch.Tensor:
    """A harmonic tone following the per-sample f0 contour, [1, 1, T]."""
    phase = 2 * math.pi * torch.cumsum(f0, 0) / SR
    return sum(0.3 / k * torch.sin(k * phase) for k in range(1, harmonics + 1)).reshape(1, 1, -1)


@pytest.mark.parametrize("f0", [70.0, 110.0, 180.0, 260.0, 420.0])
def test_steady_tones_are_tracked_to_a_fraction_of_a_percent(f0):
    track = estimate_f0(_harmonic(torch.full((SR,), f0)), SR, 320)
    inner = track.f0[0, 2:-2]
    assert track.f0.shape == (1, 50) and bool(track.voiced[0, 2:-2].all())
    assert float((inner - f0).abs().max()) < 0.005 * f0  # measured: < 0.05 %


def test_a_glide_is_followed_frame_by_frame():
    t = torch.arange(SR) / SR
    contour = 150 + 100 * t
    track = estimate_f0(_harmonic(contour), SR, 320)
    centres = 150 + 100 * (torch.arange(50) * 320 + 160) / SR  # each estimate is centred on its block
    error = ((track.f0[0, 1:-1] - centres[1:-1]).abs() / centres[1:-1]).max()
    assert float(error) < 0.01  # measured: 0.3 %


def test_noise_and_silence_are_unvoiced_and_frame_counts_follow_the_hop():
    noise = 0.1 * torch.randn(2, 1, 8001, generator=torch.Generator().manual_seed(0))
    track = estimate_f0(noise, SR, 320)
    assert track.f0.shape == (2, 26)  # ceil(8001 / 320)
    assert not bool(track.voiced.any()) and bool((track.f0 == 0).all())
    assert not bool(estimate_f0(torch.zeros(1, 1, 3200), SR, 320).voiced.any())
    # a tone quieter than the silence floor is unvoiced too
    quiet = 1e-4 * _harmonic(torch.full((3200,), 200.0))
    assert not bool(estimate_f0(quiet, SR, 320, silence_db=-50).voiced.any())


def test_voicing_switches_with_the_signal():
    tone = _harmonic(torch.full((SR // 2,), 200.0))
    noise = 0.1 * torch.randn(1, 1, SR // 2, generator=torch.Generator().manual_seed(1))
    track = estimate_f0(torch.cat([tone, noise], dim=-1), SR, 320)
    assert bool(track.voiced[0, 2:23].all()) and not bool(track.voiced[0, 27:].any())


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="fmin"):
        estimate_f0(torch.zeros(1, 1, 320), SR, 320, fmin=500, fmax=60)
