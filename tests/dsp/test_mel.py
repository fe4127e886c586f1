import math

import torch

from hificodec.dsp.mel import MelResolution, hz_to_mel, log_mel_spectrogram, mel_filterbank, mel_to_hz


def test_mel_scale_round_trip_and_slaney_breakpoint():
    hz = torch.tensor([0.0, 500.0, 1000.0, 4000.0, 8000.0], dtype=torch.float64)
    assert torch.allclose(mel_to_hz(hz_to_mel(hz)), hz)
    assert math.isclose(float(hz_to_mel(torch.tensor(1000.0))), 15.0)  # linear part: 1000 / (200/3)


def test_filterbank_shape_area_and_cache():
    fb = mel_filterbank(16000, 1024, 80, 0, 8000)
    assert fb.shape == (80, 513) and (fb >= 0).all()
    # Slaney normalisation: every triangle has unit area in Hz (up to the frequency grid's sampling)
    area = fb.sum(dim=1) * (16000 / 1024)
    assert torch.allclose(area[10:], torch.ones(70), atol=0.05)
    assert mel_filterbank(16000, 1024, 80, 0, 8000) is fb  # computed once per setting
    # filter centres rise monotonically with the mel index
    assert (torch.diff(fb.argmax(dim=1)) >= 0).all()


def test_log_mel_of_a_tone_peaks_at_its_band():
    sr = 16000
    t = torch.arange(sr) / sr
    wav = (0.5 * torch.sin(2 * math.pi * 1000 * t))[None, None]
    res = MelResolution(n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmax=8000)
    logmel = log_mel_spectrogram(wav, sr, res)
    assert logmel.shape == (1, 80, sr // 256 + 1)
    band = int(logmel.mean(dim=-1).argmax())
    centre = float(mel_to_hz(torch.linspace(0, float(hz_to_mel(torch.tensor(8000.0))), 82)[band + 1]))
    assert abs(centre - 1000) < 100
