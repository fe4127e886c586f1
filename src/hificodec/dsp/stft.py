"""Short-time Fourier transforms and their windows, shared by the decoder head, losses and metrics."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .padding import pad1d


def hann_window(win_length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    return constant(("hann", int(win_length), str(device)), lambda: torch.hann_window(int(win_length), device=device))


_CONSTANTS: dict[tuple, torch.Tensor] = {}


def constant(key: tuple, make: Callable[[], torch.Tensor], keep: int = 64) -> torch.Tensor:
    """A tensor made once per `key` (windows, filterbanks) and reused: the losses ask for them every step.

    A plain dict rather than `functools.lru_cache`: torch.compile reads a dict entry as a constant, where it
    traces through an lru_cache wrapper into the tensor's construction (a graph break per call). Made
    outside inference mode, so that one first asked for by an evaluation also serves training."""
    cached = _CONSTANTS.get(key)
    if cached is None:
        with torch.inference_mode(False), torch.no_grad():
            cached = make()
        if len(_CONSTANTS) >= keep:
            _CONSTANTS.pop(next(iter(_CONSTANTS)))
        _CONSTANTS[key] = cached
    return cached


def stft(wav: torch.Tensor, n_fft: int, hop_length: int, win_length: int, center: bool = True) -> torch.Tensor:
    """Complex STFT of [B, 1, T] or [B, T] audio -> [B, n_fft // 2 + 1, frames] (float32, outside autocast)."""
    x = wav.reshape(-1, wav.shape[-1]).float()
    if center:
        # reflect padding needs T > pad; fall back to zero padding for very short clips
        pad = n_fft // 2
        mode = "reflect" if x.shape[-1] > pad else "constant"
        x = torch.nn.functional.pad(x[:, None], (pad, pad), mode=mode)[:, 0]
    return torch.stft(
        x, n_fft, hop_length=hop_length, win_length=win_length, window=hann_window(win_length, x.device),
        center=False, return_complex=True,
    )


def centered_stft(wav: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """`torch.stft(center=True)` (reflect padding) that also takes signals no longer than n_fft // 2.

    torch's reflect padding needs more samples than it pads; a one- or two-frame decode has fewer.
    `pad1d` gives the same values whenever torch's would work and pads zeros first otherwise.
    """
    pad = n_fft // 2
    padded = pad1d(wav.reshape(-1, 1, wav.shape[-1]), pad, pad, "reflect").reshape(*wav.shape[:-1], -1)
    return torch.stft(padded, n_fft, hop_length, window=window, center=False, return_complex=True)


def overlap_add_istft(
    spec: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, frame_shift: int = 0
) -> torch.Tensor:
    """Inverse STFT [B, n_fft // 2 + 1, F] -> [B, F * hop_length], frame k centred on sample
    (k + frame_shift) * hop_length.

    With frame_shift 0 this is `torch.istft(center=True, length=F * hop)` (the same windowed
    overlap-add divided by the summed squared window, equal to float rounding). A shift of one frame
    lets code frame k speak about the audio up to one hop later, so a causal decoder's output at a
    sample needs codes at most one frame ahead (see `ISTFTHead`). Written as irfft + `fold` rather than
    `torch.istft` so the same arithmetic serves streaming (a running overlap-add) and export.
    """
    if not 0 <= frame_shift * hop_length <= n_fft // 2:
        raise ValueError(f"frame_shift must be between 0 and {n_fft // 2 // hop_length} frames, got {frame_shift}")
    batch, _, frames = spec.shape
    chunks = torch.fft.irfft(spec, n=n_fft, dim=1) * window[:, None]  # [B, n_fft, F]
    total = (frames - 1) * hop_length + n_fft
    signal = F.fold(chunks, output_size=(1, total), kernel_size=(1, n_fft), stride=(1, hop_length))
    start = n_fft // 2 - frame_shift * hop_length
    keep = slice(start, start + frames * hop_length)
    return signal.reshape(batch, total)[:, keep] / _inverse_envelope(window, hop_length, frames, start)


def _inverse_envelope(window: torch.Tensor, hop_length: int, frames: int, start: int) -> torch.Tensor:
    """The summed squared window over the kept samples, clamped as torch.istft does (recomputed only
    when its inputs change: a training run or a long decode asks for the same one many times)."""
    key = (window.data_ptr(), window._version, window.device, window.dtype, hop_length, frames, start)
    cached = _ENVELOPES.get(key)
    if cached is None:
        n_fft = window.shape[0]
        total = (frames - 1) * hop_length + n_fft
        with torch.inference_mode(False), torch.no_grad():
            squared = window.detach().square()[None, :, None].expand(1, n_fft, frames)
            envelope = F.fold(squared, output_size=(1, total), kernel_size=(1, n_fft), stride=(1, hop_length))
            cached = envelope.reshape(total)[start : start + frames * hop_length].clamp(min=1e-11)
        if len(_ENVELOPES) >= 32:
            _ENVELOPES.pop(next(iter(_ENVELOPES)))
        _ENVELOPES[key] = cached
    return cached


_ENVELOPES: dict[tuple, torch.Tensor] = {}
