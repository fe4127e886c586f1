import numpy as np
import pytest

from hificodec.errors import HificodecError
from hificodec.eval import baselines as B
from hificodec.eval.align import align_and_crop
from hificodec.eval.metrics import pesq_wb


def test_parse_baselines():
    specs = B.parse_baselines(["opus:6,8,12", "speex:q4", "codec2:3200", "amrwb:6.6"])
    assert [s.name for s in specs] == ["opus-6k", "opus-8k", "opus-12k", "speex-q4", "codec2-3200", "amrwb-6.6k"]
    assert specs[0].encoder_args() == ["-b:a", "6k", "-application", "voip"]
    assert specs[-1].encoder_args() == ["-b:a", "6600"]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("mp3:128", "unknown baseline codec"),
        ("opus", "settings after a colon"),
        ("opus:six", "not a bitrate"),
        ("codec2:9999", "codec2 mode"),
        ("amrwb:7", "AMR-WB modes"),
        ("speex:q11", "q0..q10"),
    ],
)
def test_bad_baseline_specs_are_refused(bad, message):
    with pytest.raises(HificodecError, match=message):
        B.parse_baselines([bad])


def test_missing_ffmpeg_skips_with_a_reason(speech):
    spec = B.BaselineSpec("opus", "6")
    reason = B.unavailable_reason(spec, "/nonexistent/ffmpeg")
    assert reason is not None and "ffmpeg not found" in reason and "opus-6k" in reason
    with pytest.raises(HificodecError, match="ffmpeg not found"):
        B.run_baseline(speech(1.0), 16000, spec, "/nonexistent/ffmpeg")


def test_opus_round_trip_measures_its_bitrate(speech):
    spec = B.BaselineSpec("opus", "8")
    reason = B.unavailable_reason(spec)
    if reason is not None:
        pytest.skip(reason)
    x = speech(3.0, 16000)
    coded = B.run_baseline(x, 16000, spec)
    assert coded.sample_rate == 16000
    assert abs(len(coded.audio) - len(x)) < 16000 // 50  # within one 20 ms frame
    kbps = coded.bitrate(3.0) / 1000
    assert 6.0 < kbps < 11.0  # VBR around 8 kbps plus the Ogg container
    ref, deg, alignment = align_and_crop(x, coded.audio, 16000)
    assert abs(alignment.delay_ms) < 10  # ffmpeg removes Opus' pre-skip
    assert 1.5 < pesq_wb(ref, deg, 16000) < 4.5


def test_codec2_runs_at_8khz_and_returns_the_input_rate(speech):
    spec = B.BaselineSpec("codec2", "3200")
    reason = B.unavailable_reason(spec)
    if reason is not None:
        pytest.skip(reason)
    x = speech(2.0, 16000)
    coded = B.run_baseline(x, 16000, spec)
    assert abs(len(coded.audio) - len(x)) < 16000 // 10
    spec_ = np.abs(np.fft.rfft(coded.audio))
    freqs = np.fft.rfftfreq(len(coded.audio), 1 / 16000)
    assert spec_[freqs > 4200].sum() < 0.01 * spec_.sum()  # nothing above the 8 kHz Nyquist
    assert 2.5 < coded.bitrate(2.0) / 1000 < 4.0
