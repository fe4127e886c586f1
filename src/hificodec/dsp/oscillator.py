"""A harmonic oscillator driven by per-frame f0: the excitation of the decoder's iSTFT head.

Its phase is a running count of cycles, which chunked decoding carries from window to window so that
chunked and whole-file decoding give the same phase.
"""

from __future__ import annotations

import math

import torch


def frame_to_sample_rate(values: torch.Tensor, hop_length: int) -> torch.Tensor:
    """[B, F] per-frame values (frame f centred on sample f * hop + hop / 2) -> [B, F * hop], linearly
    interpolated between frame centres and held at the ends."""
    frames = values.shape[-1]
    left, right, frac = interpolation_weights(0, frames * hop_length, hop_length, frames, values.device)
    v = values.float()
    return v[:, left] * (1 - frac) + v[:, right] * frac


def interpolation_weights(
    start: int, stop: int, hop_length: int, frames: int | None, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For samples [start, stop): the frames each one interpolates between (left, right) and the weight
    of the right one. `frames` clamps at the last frame (None: the stream goes on). Positions are
    computed in float64: in float32 a position ~f + x loses x's low bits as f grows (1e-5 of a frame
    after 2 minutes at 50 Hz), and a stream that computes them from its own start would disagree."""
    t = (torch.arange(start, stop, dtype=torch.float64, device=device) + 0.5) / hop_length - 0.5
    left = t.floor().clamp(min=0)
    if frames is not None:
        left = left.clamp(max=frames - 1)
    right = left + 1 if frames is None else (left + 1).clamp(max=frames - 1)
    frac = (t - left).clamp(0, 1).float()
    return left.long(), right.long(), frac


@torch.no_grad()
def oscillator_cycles(
    f0: torch.Tensor, sample_rate: int, hop_length: int, anchor: int = 0, cycles_before: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-frame f0 [B, F] -> the oscillator's running phase in cycles [B, F * hop] (float64), so that
    `cycles_before` [B] cycles have passed before sample `anchor`. Whole-file decoding counts from 0;
    chunked decoding carries the count from chunk to chunk, so both give the same phase. float64:
    a float32 running sum drifts by a noticeable fraction of a cycle over a minute at high harmonics."""
    f0_n = frame_to_sample_rate(f0, hop_length).clamp(min=0.0).double()
    cycles = torch.cumsum(f0_n / sample_rate, dim=-1)
    if anchor > 0:
        cycles = cycles - cycles[:, anchor - 1 : anchor]
    if cycles_before is not None:
        cycles = cycles + cycles_before.double().reshape(-1, 1)
    return cycles


@torch.no_grad()
def harmonic_excitation(
    f0: torch.Tensor,
    voiced: torch.Tensor,
    sample_rate: int,
    hop_length: int,
    cycles: torch.Tensor | None = None,
    max_harmonics: int = 200,
) -> torch.Tensor:
    """Per-frame f0 [B, F] (Hz) and voicing [B, F] (0..1) -> [B, F * hop]: the sum of unit cosines at
    every harmonic below Nyquist, scaled by 1/sqrt(harmonics) and by voicing.

    The phase is the running integral of f0 (`oscillator_cycles`; from the first sample unless
    `cycles` is given), so harmonics stay coherent across frames. The sum is the closed-form Dirichlet
    kernel, so its cost does not grow with the number of harmonics.
    """
    f0_n = frame_to_sample_rate(f0, hop_length).clamp(min=0.0)
    voiced_n = frame_to_sample_rate(voiced, hop_length).clamp(0, 1)
    if cycles is None:
        cycles = oscillator_cycles(f0, sample_rate, hop_length)
    return harmonic_sum(f0_n, voiced_n, cycles, sample_rate, max_harmonics)


def harmonic_sum(
    f0_n: torch.Tensor, voiced_n: torch.Tensor, cycles: torch.Tensor, sample_rate: int, max_harmonics: int = 200
) -> torch.Tensor:
    """`harmonic_excitation` from per-sample f0 (Hz, >= 0), voicing (0..1) and running phase in cycles
    (float64), each [B, N]: a streaming decoder computes these sample by sample, an ONNX export in its graph."""
    phase = (2 * math.pi * torch.remainder(cycles, 1.0)).float()
    count = (torch.ceil(0.5 * sample_rate / f0_n.clamp(min=1.0)) - 1).clamp(1, max_harmonics)  # below Nyquist
    # sum_{k=1..K} cos(k phase) = sin((K + 1/2) phase) / (2 sin(phase / 2)) - 1/2, and K where phase -> 0
    denominator = 2 * torch.sin(phase / 2)
    near_zero = denominator.abs() < 1e-4
    total = torch.where(
        near_zero, count, torch.sin((count + 0.5) * phase) / torch.where(near_zero, 1.0, denominator) - 0.5
    )
    return total * voiced_n / count.sqrt()
