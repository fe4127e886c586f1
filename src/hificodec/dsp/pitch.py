"""Pitch tracking: a batched YIN f0 tracker in torch, and the pitch features a codec's encoder reads.

The tracker makes training targets on the training device (no extra dependency, no offline pass), the
encoder's pitch input (`models.pitch`) and the F0 metrics of evaluation. A pitch head trained against it
(`modules.pitch`) is an auxiliary loss that makes the codes carry pitch. Without it a
codec trained briefly learns the spectral envelope first and leaves out the harmonics' spacing
(scripts/pitch_probe.py measured this on the session-2 model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# log-f0 (pitch features, pitch-head predictions) is in octaves relative to this frequency (keeps it near 0)
REFERENCE_HZ = 100.0


@dataclass
class PitchTrack:
    """f0 [B, F] in Hz (0 where unvoiced), voiced [B, F] bool, periodicity [B, F] in [0, 1]."""

    f0: torch.Tensor
    voiced: torch.Tensor
    periodicity: torch.Tensor


@dataclass
class TrackerSettings:
    """`estimate_f0`'s settings, as model configs (`pitch_input`) and recipes (`losses.pitch`) give them."""

    fmin: float = 60.0
    fmax: float = 500.0
    threshold: float = 0.2  # YIN dip below which a frame counts as voiced
    window_seconds: float = 0.025
    silence_db: float = -50.0  # frames quieter than this (dBFS) are unvoiced
    causal: bool = False  # frames end where their block ends (no lookahead) instead of centred on it


@torch.no_grad()
def estimate_f0(
    wav: torch.Tensor,
    sample_rate: int,
    hop_length: int,
    fmin: float = 60.0,
    fmax: float = 500.0,
    threshold: float = 0.2,
    window_seconds: float = 0.025,
    silence_db: float = -50.0,
    causal: bool = False,
) -> PitchTrack:
    """YIN (de Cheveigné & Kawahara, 2002) on frames centred on each `hop_length` block.

    wav [B, 1, T] or [B, T] -> one estimate per block: F = ceil(T / hop_length), the codec's frame
    count when hop_length is the codec's hop. A frame is voiced when its cumulative-mean-normalised
    difference dips below `threshold` and its level is above `silence_db` dBFS. `causal`: a frame reads
    only samples up to its block's end (the analysis sits about half a window earlier than centred).
    """
    x = wav.reshape(wav.shape[0], -1).float()
    length = x.shape[-1]
    g = yin_geometry(sample_rate, hop_length, fmin, fmax, window_seconds, causal)
    frames_out = max(1, math.ceil(length / hop_length))
    # frames [B, F, span] whose integration window is centred on the block centre (causal: whose
    # span ends with the block)
    left = max(0, -g.offset)
    if torch.onnx.is_in_onnx_export():
        # an ONNX graph takes whole hops (length = frames_out * hop): the padding below is then the same
        # for every length, and the frame count needs no cut (the traced count would be frozen in)
        # (and unfold of a length unknown at export does not export: the frames are gathered instead)
        padded = F.pad(x, (left, g.offset + g.span - hop_length))[:, g.offset + left:]
        count = torch._shape_as_tensor(x)[-1] // hop_length  # a tensor: the graph reads it from the input
        starts = torch.arange(count, device=x.device) * hop_length  # type: ignore[call-overload]
        frames = padded[:, starts[:, None] + torch.arange(g.span, device=x.device)]
    else:
        right = max(0, (frames_out - 1) * hop_length + g.offset + left + g.span - (length + left))
        padded = F.pad(x, (left, right))[:, g.offset + left:]
        frames = padded.unfold(-1, g.span, hop_length)[:, :frames_out]
    return yin_frames(frames, sample_rate, g, threshold, silence_db)


@dataclass(frozen=True)
class YinGeometry:
    """Where YIN reads: frame f covers samples [f * hop + offset, f * hop + offset + span) of the input
    (zeros outside it); `window` is the integration window, lags run from tau_min to tau_max."""

    hop_length: int
    offset: int
    span: int
    window: int
    tau_min: int
    tau_max: int


def yin_geometry(
    sample_rate: int,
    hop_length: int,
    fmin: float = 60.0,
    fmax: float = 500.0,
    window_seconds: float = 0.025,
    causal: bool = False,
) -> YinGeometry:
    """The frame layout `estimate_f0` uses (streaming trackers read it to know when a frame is complete)."""
    if not 0 < fmin < fmax < sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax < sample_rate / 2, got fmin={fmin}, fmax={fmax}")
    tau_min = max(2, int(sample_rate / fmax))
    tau_max = int(math.ceil(sample_rate / fmin))
    window = max(int(round(window_seconds * sample_rate)), tau_min)
    span = window + tau_max + 1
    offset = hop_length - span if causal else hop_length // 2 - window // 2
    return YinGeometry(hop_length, offset, span, window, tau_min, tau_max)


@torch.no_grad()
def yin_frames(
    frames: torch.Tensor, sample_rate: int, g: YinGeometry, threshold: float = 0.2, silence_db: float = -50.0
) -> PitchTrack:
    """YIN on frames [B, F, span] (float32, laid out by `g`) -> one estimate per frame. Frames are
    independent of each other, so a stream can compute them as they complete."""
    window, tau_min, tau_max, span = g.window, g.tau_min, g.tau_max, g.span
    frames = frames - frames[..., :window].mean(dim=-1, keepdim=True)

    # difference d(tau) = sum_{j<W} (x_j - x_{j+tau})^2 = E_0 + E_tau - 2 r(tau), r by FFT correlation
    if torch.onnx.is_in_onnx_export():
        corr = _lag_correlation_dft(frames, window, tau_max)
    else:
        n_fft = 1 << (span + window - 1).bit_length()
        spec = torch.fft.rfft(frames, n_fft)
        head = torch.fft.rfft(frames[..., :window], n_fft)
        corr = torch.fft.irfft(spec * head.conj(), n_fft)[..., : tau_max + 1]
    energy = F.pad(frames.square().cumsum(dim=-1), (1, 0))
    e_tau = energy[..., window: window + tau_max + 1] - energy[..., : tau_max + 1]
    diff = (e_tau[..., :1] + e_tau - 2 * corr).clamp(min=0)

    # cumulative-mean-normalised difference: removes the bias towards tau = 0
    taus = torch.arange(tau_max + 1, device=frames.device, dtype=frames.dtype)
    running = diff[..., 1:].cumsum(dim=-1)
    cmnd = torch.cat([torch.ones_like(diff[..., :1]), diff[..., 1:] * taus[1:] / running.clamp(min=1e-12)], dim=-1)

    # the first local minimum below threshold (YIN's absolute threshold step), else the global minimum
    inner = cmnd[..., tau_min:tau_max]
    is_min = (inner <= cmnd[..., tau_min - 1: tau_max - 1]) & (inner <= cmnd[..., tau_min + 1: tau_max + 1])
    candidate = is_min & (inner < threshold)
    has_dip = candidate.any(dim=-1)
    first = candidate.float().argmax(dim=-1)
    best = torch.where(has_dip, first, inner.argmin(dim=-1)) + tau_min

    # parabolic interpolation between neighbouring lags
    prev, at, nxt = (cmnd.gather(-1, (best + k).unsqueeze(-1)).squeeze(-1) for k in (-1, 0, 1))
    curvature = prev - 2 * at + nxt
    shift = torch.where(curvature > 1e-9, 0.5 * (prev - nxt) / curvature.clamp(min=1e-9), torch.zeros_like(at))
    period = best.to(frames.dtype) + shift.clamp(-1, 1)

    level_db = 10 * torch.log10(frames[..., :window].square().mean(dim=-1) + 1e-12)
    voiced = has_dip & (level_db > silence_db)
    f0 = torch.where(voiced, sample_rate / period, torch.zeros_like(period))
    return PitchTrack(f0=f0, voiced=voiced, periodicity=(1 - at).clamp(0, 1))


def _lag_correlation_dft(frames: torch.Tensor, window: int, tau_max: int) -> torch.Tensor:
    """r(tau) = sum_{j<W} x_j x_{j+tau} for tau in [0, tau_max] of frames [..., span], by a real DFT
    written as matrix products: torch.fft does not trace to ONNX. A DFT of `span` points suffices, as
    j + tau stays below it (the circular correlation does not wrap)."""
    n = window + tau_max + 1  # the frames' span
    bins = n // 2 + 1

    def angles(count: int, other: int) -> torch.Tensor:  # 2 pi a b / n, reduced modulo n while exact
        a = torch.arange(count, dtype=torch.float64)[:, None] * torch.arange(other, dtype=torch.float64)[None, :]
        return (2 * math.pi / n) * torch.remainder(a, n)

    forward = angles(n, bins)
    cos, sin = torch.cos(forward).to(frames.dtype), torch.sin(forward).to(frames.dtype)
    spec_re, spec_im = frames @ cos, -(frames @ sin)
    head = frames[..., :window]
    head_re, head_im = head @ cos[:window], -(head @ sin[:window])
    # spec * conj(head), then the inverse real DFT at lags 0..tau_max: the DC and Nyquist bins count
    # once, the others twice, and their imaginary parts are dropped, as irfft does
    prod_re = spec_re * head_re + spec_im * head_im
    prod_im = spec_im * head_re - spec_re * head_im
    weight = torch.full((bins, 1), 2.0 / n, dtype=torch.float64)
    weight[0] = 1.0 / n
    if n % 2 == 0:
        weight[-1] = 1.0 / n
    inverse = angles(bins, tau_max + 1)
    inv_cos, inv_sin = (weight * torch.cos(inverse)).to(frames.dtype), (weight * torch.sin(inverse)).to(frames.dtype)
    return prod_re @ inv_cos - prod_im @ inv_sin


def pitch_features(track: PitchTrack) -> torch.Tensor:
    """[B, 3, F]: log2(f0 / 100 Hz) (0 where unvoiced), voicing (0/1) and periodicity."""
    log_f0 = torch.where(track.voiced, torch.log2(track.f0.clamp(min=1.0) / REFERENCE_HZ), torch.zeros_like(track.f0))
    return torch.stack([log_f0, track.voiced.to(log_f0.dtype), track.periodicity], dim=1)
