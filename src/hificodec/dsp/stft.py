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
