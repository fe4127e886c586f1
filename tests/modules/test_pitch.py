import pytest
import torch

from hificodec.modules.pitch import PitchHead


def test_pitch_head_shapes_and_reading():
    head = PitchHead(16, channels=8)
    out = head(torch.randn(2, 16, 7))
    assert out.shape == (2, 2, 7)
    # log2(f0 / 100) = 1 -> 200 Hz where the voicing logit is positive, 0 Hz where it is negative
    track = PitchHead.to_track(torch.tensor([[[1.0, 1.0], [3.0, -3.0]]]))
    assert torch.allclose(track.f0, torch.tensor([[200.0, 0.0]]))
    assert track.voiced.tolist() == [[True, False]]
    with pytest.raises(ValueError, match="odd"):
        PitchHead(16, kernel_size=4)
