"""Padding that also works where torch's reflect padding refuses (inputs shorter than the pad)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad1d(x: torch.Tensor, left: int, right: int, mode: str = "zeros") -> torch.Tensor:
    """F.pad of the last dimension that also works for reflect padding wider than the input (pads
    zeros first). x: [B, C, T] or [B, C, 1, T]."""
    if left == 0 and right == 0:  # e.g. every 1x1 conv: no copy
        return x
    if mode == "zeros":
        return F.pad(x, (left, right))
    length = x.shape[-1]
    max_pad = max(left, right)
    extra = 0
    if mode == "reflect" and length <= max_pad:
        extra = max_pad - length + 1
        x = F.pad(x, (0, extra))
    elif mode == "reflect":
        # the same values as F.pad(mode="reflect"), whose CPU kernels (forward and backward) cost
        # ~7 % of a SEANet encoder's training step at 16 kHz; a concatenation of flipped edges does not
        left_edge = [x[..., 1 : left + 1].flip(-1)] if left else []
        right_edge = [x[..., length - right - 1 : length - 1].flip(-1)] if right else []
        return torch.cat([*left_edge, x, *right_edge], dim=-1)
    pads = (left, right) if x.dim() < 4 else (left, right, 0, 0)  # torch pads two dims of a 4-D input
    padded = F.pad(x, pads, mode=mode)
    return padded[..., : padded.shape[-1] - extra]
