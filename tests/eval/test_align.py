import numpy as np
import pytest

from hificodec.eval.align import align_and_crop, apply_alignment, estimate_delay


def delayed(x: np.ndarray, samples: int) -> np.ndarray:
    return np.concatenate([np.zeros(samples, dtype=x.dtype), x])[: len(x)] if samples >= 0 else x[-samples:]


@pytest.mark.parametrize("sample_rate", [16000, 24000])
def test_recovers_a_planted_10ms_delay(speech, sample_rate):
    x = speech(2.0, sample_rate)
    shift = sample_rate // 100
    rng = np.random.default_rng(0)
    y = 0.7 * delayed(x, shift) + 0.01 * rng.standard_normal(len(x)).astype(np.float32)  # gain + noise
    a = estimate_delay(x, y, sample_rate)
    assert a.delay == shift
    assert a.delay_ms == pytest.approx(10.0)
    assert a.confidence > 0.9
    r, d, _ = align_and_crop(x, y, sample_rate)
    assert len(r) == len(d) == len(x) - shift
    assert np.corrcoef(r, d)[0, 1] > 0.99


def test_output_that_leads_the_reference_gives_a_negative_delay(speech):
    x = speech(2.0, 16000)
    y = delayed(x, -80)  # output starts 5 ms into the reference
    a = estimate_delay(x, y, 16000)
    assert a.delay == -80
    r, d = apply_alignment(x, y, a.delay)
    np.testing.assert_array_equal(r, d)


def test_delay_outside_the_search_range_is_not_found(speech):
    x = speech(2.0, 16000)
    y = delayed(x, 16000 // 5)  # 200 ms
    assert estimate_delay(x, y, 16000, max_delay_ms=50).delay != 3200
    assert estimate_delay(x, y, 16000, max_delay_ms=250).delay == 3200


def test_unrelated_output_keeps_zero_delay(speech):
    x = speech(2.0, 16000)
    noise = np.random.default_rng(3).standard_normal(len(x)).astype(np.float32)
    a = estimate_delay(x, noise, 16000)
    assert a.delay == 0 and a.confidence < 0.2
