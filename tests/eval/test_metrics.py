import numpy as np
import pytest
import soxr
from pesq import pesq

from hificodec.eval import metrics as M


def lowpass(x: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """Zero-phase brick-wall low-pass (no delay, so only the bandwidth changes)."""
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(len(x), 1 / sample_rate) > cutoff_hz] = 0
    return np.fft.irfft(spec, len(x)).astype(np.float32)


def add_noise(x: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(len(x))
    n *= np.sqrt(np.mean(x.astype(np.float64) ** 2) / np.mean(n**2) / 10 ** (snr_db / 10))
    return (x + n).astype(np.float32)


def test_signal_against_itself_scores_the_maximum(speech):
    x = speech(3.0, 16000)
    assert M.pesq_wb(x, x, 16000) == pytest.approx(4.644, abs=0.005)  # P.862.2 ceiling
    assert M.pesq_nb(x, x, 16000) == pytest.approx(4.549, abs=0.005)  # P.862.1 ceiling
    assert M.stoi(x, x, 16000) == pytest.approx(1.0, abs=1e-9)
    assert M.estoi(x, x, 16000) == pytest.approx(1.0, abs=1e-9)
    assert M.mel_distance(x, x, 16000) == 0.0
    assert M.f0_frame_error(x, x, 16000) == 0.0
    assert M.si_sdr(x, x, 16000) > 100


def test_more_noise_scores_lower_on_every_metric(speech):
    x = speech(3.0, 16000)
    scores = [M.compute_metrics(x, add_noise(x, snr), 16000) for snr in (30, 15, 5)]
    assert all(not errors for _, errors in scores)
    for name in ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr"):
        values = [v[name] for v, _ in scores]
        assert values[0] > values[1] > values[2], (name, values)
    for name in ("mel_distance", "f0_frame_error"):
        values = [v[name] for v, _ in scores]
        assert values[0] < values[1] < values[2], (name, values)
    # SI-SDR of additive white noise is the SNR itself
    assert [round(v["si_sdr"]) for v, _ in scores] == [30, 15, 5]


def test_f0_frame_error_counts_frames_with_the_wrong_pitch(speech):
    x = speech(3.0, 16000, f0=120.0)
    # same syllables, f0 4 % off: within the 20 % tolerance; 25 % off: every voiced frame is an error
    assert M.f0_frame_error(x, speech(3.0, 16000, f0=125.0), 16000) < 0.05  # measured 0.007
    assert M.f0_frame_error(x, speech(3.0, 16000, f0=150.0), 16000) > 0.5  # measured 0.74
    # envelope-shaped noise (what a codec that lost the pitch outputs): every voiced frame is lost
    noise = np.random.default_rng(0).standard_normal(len(x)).astype(np.float32) * np.abs(x)
    assert M.f0_frame_error(x, noise, 16000) > 0.5


def test_narrower_band_scores_lower(speech):
    x = speech(3.0, 16000)
    pesq_scores, stoi_scores, mel = [], [], []
    for cutoff in (3000, 1500, 700):
        y = lowpass(x, 16000, cutoff)
        pesq_scores.append(M.pesq_wb(x, y, 16000))
        stoi_scores.append(M.stoi(x, y, 16000))
        mel.append(M.mel_distance(x, y, 16000))
    assert 4.6 > pesq_scores[0] > pesq_scores[1] > pesq_scores[2]
    assert 1.0 > stoi_scores[0] > stoi_scores[1] > stoi_scores[2]
    assert mel[0] < mel[1] < mel[2]


def test_24khz_audio_is_scored_at_16khz_by_duration(speech):
    """AcademiCodec resampled 24 kHz audio to 16000 *samples*: that time-compresses a 3 s file 3x and
    keeps only content below 2.7 kHz, so a 3 kHz low-pass became invisible to its PESQ."""
    from scipy.signal import resample as resample_to_n_samples  # what the original script did

    x = speech(3.0, 24000)
    y = lowpass(x, 24000, 3000)
    ours = M.pesq_wb(x, y, 24000)
    proper = pesq(16000, soxr.resample(x, 24000, 16000), soxr.resample(y, 24000, 16000), "wb")
    assert ours == pytest.approx(proper, abs=1e-6)
    original = pesq(16000, resample_to_n_samples(x, 16000), resample_to_n_samples(y, 16000), "wb")
    assert original > 4.5  # the bug: a heavily band-limited output scores as transparent
    assert ours < original - 0.3
    assert M.stoi(x, y, 24000) == pytest.approx(
        M.stoi(soxr.resample(x, 24000, 16000), soxr.resample(y, 24000, 16000), 16000), abs=1e-6
    )


def test_silent_reference_is_reported_not_scored():
    rng = np.random.default_rng(0)
    silent = np.zeros(32000, dtype=np.float32)
    values, errors = M.compute_metrics(silent, 1e-3 * rng.standard_normal(32000).astype(np.float32), 16000)
    assert values == {}
    assert set(errors) == set(M.METRICS)
    assert all("reference is silent" in e for e in errors.values())
    with pytest.raises(M.MetricError, match="silent"):
        M.pesq_wb(silent, silent, 16000)


def test_too_short_file_is_reported_not_scored(speech):
    x = speech(3.0, 16000)[4000:6000]  # 125 ms of voiced speech
    values, errors = M.compute_metrics(x, x, 16000)
    assert "BufferTooShortError" in errors["pesq_wb"] and "BufferTooShortError" in errors["pesq_nb"]
    # pystoi would return 1e-5 with a warning here: that must not become a score
    assert "too short" in errors["stoi"] and "too short" in errors["estoi"]
    assert "stoi" not in values and "pesq_wb" not in values
    assert values["mel_distance"] == 0.0  # defined for short audio, so it is scored


def test_unequal_lengths_are_refused(speech):
    x = speech(1.0, 16000)
    with pytest.raises(ValueError, match="align first"):
        M.pesq_wb(x, x[:-10], 16000)


def test_non_finite_output_is_an_error(speech):
    x = speech(1.0, 16000)
    y = x.copy()
    y[100] = np.nan
    with pytest.raises(M.MetricError, match="non-finite"):
        M.si_sdr(x, y, 16000)


def test_stoi_takes_the_reference_first(speech):
    """STOI is not symmetric: a copy with 1 s of 3 zeroed scores low against the clean reference, while
    swapped arguments (the zeroed copy taken as the reference, whose silent frames pystoi drops) score
    the damaged copy as nearly perfect. Measured on this clip: 0.639 in the right order, 1.000 swapped."""
    x = speech(3.0, 16000)
    damaged = x.copy()
    damaged[16000:32000] = 0
    right, swapped = M.stoi(x, damaged, 16000), M.stoi(damaged, x, 16000)
    assert right < 0.8 < 0.95 < swapped, (right, swapped)
    from pystoi import stoi as stoi_lib

    assert right == pytest.approx(stoi_lib(x, damaged, 16000), abs=1e-6)  # pystoi's own order: (clean, degraded)


def test_pesq_nb_is_scored_at_8khz(speech):
    """Narrow-band PESQ at 8 kHz, as P.862 defines it (16 kHz audio resampled by duration); scored at
    16 kHz instead, this pair scores 1.581 instead of 1.679 (measured; the bound below is 0.02)."""
    x = speech(3.0, 16000)
    y = add_noise(x, 10)
    expected = pesq(8000, soxr.resample(x, 16000, 8000), soxr.resample(y, 16000, 8000), "nb")
    assert M.pesq_nb(x, y, 16000) == pytest.approx(expected, abs=1e-6)
    assert abs(pesq(16000, x, y, "nb") - expected) > 0.02  # the rates give different scores on this pair
