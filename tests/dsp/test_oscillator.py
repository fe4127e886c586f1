import math

import torch

from hificodec.dsp.oscillator import frame_to_sample_rate, harmonic_excitation
from hificodec.dsp.pitch import estimate_f0

SR = 16000


def test_frame_values_are_interpolated_between_frame_centres():
    out = frame_to_sample_rate(torch.tensor([[0.0, 1.0, 2.0]]), 4)
    # centres at samples 1.5, 5.5, 9.5: held before the first and after the last
    assert torch.allclose(out, torch.tensor([[0, 0, 0.125, 0.375, 0.625, 0.875, 1.125, 1.375, 1.625, 1.875, 2, 2]]))


def test_harmonic_excitation_is_the_sum_of_harmonics_below_nyquist():
    f0 = torch.linspace(70, 400, 50).reshape(1, -1)
    out = harmonic_excitation(f0, torch.ones(1, 50), SR, 320)
    # the direct sum it replaces (in float64)
    f0_n = frame_to_sample_rate(f0, 320).double()
    phase = torch.remainder(2 * math.pi * torch.cumsum(f0_n / SR, -1), 2 * math.pi)
    k = torch.arange(1, 201, dtype=torch.float64)[:, None, None]
    below = k * f0_n < SR / 2
    direct = (torch.cos(k * phase) * below).sum(0) / below.sum(0).sqrt()
    assert float((out.double() - direct).abs().max()) < 0.02  # peaks reach ~10
    # steady f0: energy only at its multiples; unvoiced frames are silent
    steady = harmonic_excitation(torch.full((2, 50), 200.0), torch.tensor([[1.0] * 50, [0.0] * 50]), SR, 320)
    spectrum = torch.fft.rfft(steady[0]).abs()
    assert set((torch.topk(spectrum, 39).indices % 200).tolist()) == {0}  # 39 harmonics below 8 kHz
    assert float(steady[1].abs().max()) == 0.0
    assert float(estimate_f0(steady[:1], SR, 320).f0[0, 2:-2].sub(200).abs().max()) < 0.1
