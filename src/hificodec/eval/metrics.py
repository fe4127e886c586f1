"""Per-file quality metrics. Every function takes (ref, deg, sample_rate) as 1-D float arrays of equal
length (align and crop first: `hificodec.eval.align`) and returns a float, or raises `MetricError`
when the metric is undefined for this input (silence, too short) — never a placeholder score.

PESQ and STOI are computed at 16 kHz (PESQ narrow-band at 8 kHz): other rates are resampled with soxr
by duration, not to a fixed number of samples (AcademiCodec's script resampled 24 kHz audio to 16000
*samples*, which time-compresses the audio and makes its 24 kHz PESQ numbers incomparable).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from ..audio import resample
from ..errors import HificodecError
from .mel import mel_distance as _mel_distance

PESQ_WB_RATE = 16000
PESQ_NB_RATE = 8000
STOI_RATE = 16000
PITCH_RATE = 16000
#: relative f0 deviation that counts as a gross pitch error
GROSS_PITCH_ERROR = 0.2
#: peak level below which a reference counts as digital silence
SILENCE_PEAK = 1e-4


class MetricError(HificodecError):
    """A metric is undefined for this input; the message says why (reported per file)."""


def _prepare(ref: np.ndarray, deg: np.ndarray, sample_rate: int, target_rate: int | None = None):
    ref = np.asarray(ref, dtype=np.float32).reshape(-1)
    deg = np.asarray(deg, dtype=np.float32).reshape(-1)
    if ref.shape != deg.shape:
        raise ValueError(f"reference and degraded lengths differ ({len(ref)} vs {len(deg)}): align first")
    if not (np.isfinite(ref).all() and np.isfinite(deg).all()):
        raise MetricError("non-finite samples")
    if target_rate is not None and target_rate != sample_rate:
        ref, deg = resample(ref, sample_rate, target_rate), resample(deg, sample_rate, target_rate)
        n = min(len(ref), len(deg))
        ref, deg = ref[:n], deg[:n]
    return ref, deg


def _check_not_silent(ref: np.ndarray) -> None:
    if ref.size == 0 or float(np.max(np.abs(ref))) < SILENCE_PEAK:
        raise MetricError("reference is silent")


def _pesq(ref: np.ndarray, deg: np.ndarray, sample_rate: int, mode: str, rate: int) -> float:
    import pesq as pesq_lib

    r, d = _prepare(ref, deg, sample_rate, rate)
    _check_not_silent(r)  # pesq would divide by a zero peak and feed NaNs to its C code
    try:
        return float(pesq_lib.pesq(rate, r.astype(np.float64), d.astype(np.float64), mode))
    except pesq_lib.PesqError as e:  # NoUtterancesError, BufferTooShortError, ...
        detail = e.args[0] if e.args else ""
        detail = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
        raise MetricError(f"{type(e).__name__}: {detail.strip() or 'pesq failed'}") from None


def pesq_wb(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """PESQ wide-band (ITU-T P.862.2) MOS-LQO at 16 kHz, -0.5..4.64."""
    return _pesq(ref, deg, sample_rate, "wb", PESQ_WB_RATE)


def pesq_nb(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """PESQ narrow-band (P.862 + P.862.1 mapping) MOS-LQO at 8 kHz, up to ~4.55."""
    return _pesq(ref, deg, sample_rate, "nb", PESQ_NB_RATE)


def _stoi(ref: np.ndarray, deg: np.ndarray, sample_rate: int, extended: bool) -> float:
    from pystoi import stoi as stoi_lib

    r, d = _prepare(ref, deg, sample_rate, STOI_RATE)
    _check_not_silent(r)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(stoi_lib(r, d, STOI_RATE, extended=extended))
    # pystoi returns 1e-5 with a RuntimeWarning when too little non-silent audio is left: not a score.
    for w in caught:
        if "Not enough STFT frames" in str(w.message):
            raise MetricError("too short for STOI (fewer than 30 non-silent frames, ~384 ms)")
    return value


def stoi(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """Short-time objective intelligibility (0..1), computed on 16 kHz audio."""
    return _stoi(ref, deg, sample_rate, extended=False)


def estoi(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """Extended STOI (Jensen & Taal 2016), computed on 16 kHz audio."""
    return _stoi(ref, deg, sample_rate, extended=True)


def si_sdr(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (zero-mean signals); sample_rate unused."""
    r, d = _prepare(ref, deg, sample_rate)
    r = r.astype(np.float64) - r.mean()
    d = d.astype(np.float64) - d.mean()
    _check_not_silent(r)
    target = (np.dot(d, r) / np.dot(r, r)) * r
    noise = d - target
    t, e = np.dot(target, target), np.dot(noise, noise)
    if e == 0:
        return float("inf")
    if t == 0:
        raise MetricError("degraded signal is orthogonal to the reference (SI-SDR is -inf)")
    return float(10 * np.log10(t / e))


def f0_frame_error(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """F0 frame error (Chu & Alwan, 2009), 0..1: the fraction of 10 ms frames whose voicing differs,
    or which are voiced in both with f0 more than 20 % apart. YIN (`hificodec.dsp.pitch`) on 16 kHz
    audio; lower is better. Catches codecs that keep the spectral envelope but lose the pitch."""
    import torch

    from ..dsp.pitch import estimate_f0

    r, d = _prepare(ref, deg, sample_rate, PITCH_RATE)
    _check_not_silent(r)
    track = estimate_f0(torch.from_numpy(np.stack([r, d])), PITCH_RATE, PITCH_RATE // 100)
    voiced_ref, voiced_deg = track.voiced[0], track.voiced[1]
    both = voiced_ref & voiced_deg
    gross = both & ((track.f0[1] - track.f0[0]).abs() > GROSS_PITCH_ERROR * track.f0[0])
    return float(((voiced_ref != voiced_deg) | gross).float().mean())


def mel_distance(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """Multi-resolution log-mel (natural log) L1 distance (0 = identical), at the given rate."""
    r, d = _prepare(ref, deg, sample_rate)
    _check_not_silent(r)
    try:
        return _mel_distance(r, d, sample_rate)
    except ValueError as e:
        raise MetricError(str(e)) from None


#: name -> function, in report order
METRICS: dict[str, Callable[[np.ndarray, np.ndarray, int], float]] = {
    "pesq_wb": pesq_wb,
    "pesq_nb": pesq_nb,
    "stoi": stoi,
    "estoi": estoi,
    "si_sdr": si_sdr,
    "mel_distance": mel_distance,
    "f0_frame_error": f0_frame_error,
}


def compute_metrics(
    ref: np.ndarray, deg: np.ndarray, sample_rate: int, names: list[str] | None = None
) -> tuple[dict[str, float], dict[str, str]]:
    """All (or the named) metrics: (values, errors) where errors maps a metric to why it has no value."""
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name in names or list(METRICS):
        try:
            values[name] = METRICS[name](ref, deg, sample_rate)
        except MetricError as e:
            errors[name] = str(e)
    return values, errors
