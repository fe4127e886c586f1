"""Short-time Fourier transforms and their windows, shared by the decoder head, losses and metrics."""

from __future__ import annotations

import functools

import torch

from .padding import pad1d


@functools.lru_cache(maxsize=64)
def _hann_cached(win_length: int, device: str) -> torch.Tensor:
    with torch.inference_mode(False):  # usable by training even when first asked for in inference mode
        return torch.hann_window(win_length, device=device)


def hann_window(win_length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    return _hann_cached(int(win_length), str(device))


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
    fold = dict(output_size=(1, total), kernel_size=(1, n_fft), stride=(1, hop_length))
    signal = torch.nn.functional.fold(chunks, **fold).reshape(batch, total)
    squared = (window.square()[None, :, None]).expand(1, n_fft, frames)
    envelope = torch.nn.functional.fold(squared, **fold).reshape(total)
    start = n_fft // 2 - frame_shift * hop_length
    keep = slice(start, start + frames * hop_length)
    return signal[:, keep] / envelope[keep].clamp(min=1e-11)
