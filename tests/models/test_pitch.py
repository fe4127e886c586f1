import pytest
import torch

from hificodec.dsp.pitch import TrackerSettings
from hificodec.errors import ConfigError
from hificodec.models.pitch import PitchConditioning, build_pitch_conditioning

SR, HOP = 16000, 320


def test_the_config_plugs_in_the_parts_it_names():
    assert build_pitch_conditioning({}, 8, SR, HOP) is None
    assert build_pitch_conditioning({"pitch_input": False, "pitch_head": None}, 8, SR, HOP) is None
    only_input = build_pitch_conditioning({"pitch_input": True}, 8, SR, HOP)
    assert only_input is not None and only_input.input is not None and only_input.head is None
    assert only_input.tracker == TrackerSettings()
    with pytest.raises(ConfigError, match="no pitch head"):
        only_input.predict(torch.zeros(1, 8, 3))
    with pytest.raises(ConfigError, match="pitch_input"):
        build_pitch_conditioning({"pitch_input": {"fmn": 70}}, 8, SR, HOP)


def test_conditioning_starts_as_the_identity_and_adds_pitch_features():
    pitch = PitchConditioning(8, SR, HOP, TrackerSettings(), None)
    t = torch.arange(SR // 2) / SR
    wav = (0.3 * torch.sin(2 * torch.pi * 200 * t)).reshape(1, 1, -1)
    latent = torch.randn(1, 8, wav.shape[-1] // HOP)
    assert torch.equal(pitch.condition(latent, wav), latent)  # zero-initialised input
    assert pitch.input is not None
    with torch.no_grad():
        pitch.input.weight[0, 0] = 1.0  # channel 0 += log2(f0 / 100 Hz)
    shifted = pitch.condition(latent, wav) - latent
    assert torch.allclose(shifted[0, 0, 2:-2], torch.ones(21), atol=0.01)  # 200 Hz is one octave up
    assert torch.equal(PitchConditioning(8, SR, HOP, None, None).condition(latent, wav), latent)


def test_the_oscillator_phase_carried_between_windows_is_the_whole_stream_phase():
    pitch = PitchConditioning(8, SR, HOP, None, {"channels": 4})
    prediction = torch.stack([torch.linspace(0.2, 1.2, 30), torch.full((30,), 5.0)])[None]  # gliding, voiced
    whole, _ = pitch.excitation(prediction)
    # as chunked decoding does: window 1 keeps frames 0-11 (3 frames of right context), window 2 keeps
    # frames 12-29 (2 of left context); frame-to-sample interpolation reads one neighbouring frame
    first, cycles = pitch.excitation(prediction[..., :15])
    second, _ = pitch.excitation(prediction[..., 10:], start_frame=2, phase=pitch.carried_phase(cycles, 12))
    # peaks reach ~8; the float32 phase near them differs by an ulp between the two running sums
    assert torch.allclose(second[:, 2 * HOP : 19 * HOP], whole[:, 12 * HOP : 29 * HOP], atol=0.05)
    assert torch.allclose(first[:, : 12 * HOP], whole[:, : 12 * HOP], atol=1e-5)
    restarted, _ = pitch.excitation(prediction[..., 10:], start_frame=2)
    assert not torch.allclose(restarted[:, 2 * HOP : 19 * HOP], whole[:, 12 * HOP : 29 * HOP], atol=0.1)
