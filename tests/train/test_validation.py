from types import SimpleNamespace

import pytest
import torch

from hificodec.audio import load_audio
from hificodec.demo import bundled_clip
from hificodec.eval.metrics import MetricError, pesq_wb, stoi
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
    assert result.stoi == stoi(real, fake, 16000)  # the long clip's score alone, as `hificodec eval` gives it
    assert 0.8 < result.stoi < 1.0  # a real score of a slightly noisy copy
    # PESQ scores the 0.3 s clip too: the mean of both, each as eval scores it
    short_fake = model(short).audio[0, 0].numpy()
    pesqs = [pesq_wb(short[0, 0].numpy(), short_fake, 16000), pesq_wb(real, fake, 16000)]
    assert result.pesq == pytest.approx(sum(pesqs) / 2)
    only_short = validate(model, [short], {}, 16000, metric_clips=1, device=torch.device("cpu"))
    assert only_short.stoi is None and only_short.clips == 1


def test_a_silent_reference_is_left_out_as_eval_leaves_it_out(speech):
    """Digital silence has no PESQ (its C code would divide by a zero peak) and no STOI: no scores at all,
    for the same reason `hificodec eval` gives, rather than a number from an undefined metric."""
    model = NoisyCopy()
    silent = torch.zeros_like(speech)
    for metric in (pesq_wb, stoi):
        with pytest.raises(MetricError, match="silent"):
            metric(silent[0, 0].numpy(), silent[0, 0].numpy(), 16000)
    result = validate(model, [silent], {}, 16000, metric_clips=1, device=torch.device("cpu"))
    assert result.pesq is None and result.stoi is None and result.clips == 1
    # next to a scorable clip, the silent one is left out of the averages
    both = validate(model, [silent, speech], {}, 16000, metric_clips=2, device=torch.device("cpu"))
    real, fake = speech[0, 0].numpy(), model(speech).audio[0, 0].numpy()
    assert both.pesq == pesq_wb(real, fake, 16000) and both.stoi == stoi(real, fake, 16000)


def test_scores_are_computed_at_the_model_rate_by_eval(speech):
    """A 24 kHz model's clips go through eval's resampling to 16 kHz: the same scores as eval's metrics."""
    from hificodec.audio import resample

    wav24 = torch.from_numpy(resample(speech[0, 0].numpy(), 16000, 24000))[None, None]
    model = NoisyCopy()
    result = validate(model, [wav24], {}, 24000, metric_clips=1, device=torch.device("cpu"))
    real, fake = wav24[0, 0].numpy(), model(wav24).audio[0, 0].numpy()
    assert result.pesq == pesq_wb(real, fake, 24000) and result.stoi == stoi(real, fake, 24000)
