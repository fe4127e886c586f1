from types import SimpleNamespace

import pytest
import torch

from hificodec.audio import load_audio
from hificodec.demo import bundled_clip
from hificodec.eval.metrics import stoi
from hificodec.train.validation import validate


class NoisyCopy(torch.nn.Module):
    """A stand-in codec whose output is its input plus fixed noise (20 dB SNR)."""

    def forward(self, wav):
        g = torch.Generator().manual_seed(0)
        return SimpleNamespace(audio=wav + 0.1 * wav.std() * torch.randn(wav.shape, generator=g))


@pytest.fixture(scope="module")
def speech() -> torch.Tensor:
    audio, _ = load_audio(bundled_clip(), sample_rate=16000, mono=True)
    return torch.from_numpy(audio[:, 16000:48000])[None]  # 2 s of speech


def test_metrics_leave_out_clips_they_cannot_score(speech):
    """A 0.3 s clip is too short for STOI: pystoi's placeholder 1e-5 must not be averaged in."""
    model = NoisyCopy()
    short, long = speech[..., :4800], speech
    result = validate(model, [short, long], {}, 16000, metric_clips=2, device=torch.device("cpu"))
    real, fake = long[0, 0].numpy(), model(long).audio[0, 0].numpy()
    assert result.stoi == pytest.approx(stoi(real, fake, 16000), abs=1e-6)
    assert 0.8 < result.stoi < 1.0  # a real score of a slightly noisy copy
    assert result.pesq is not None
    only_short = validate(model, [short], {}, 16000, metric_clips=1, device=torch.device("cpu"))
    assert only_short.stoi is None and only_short.clips == 1
