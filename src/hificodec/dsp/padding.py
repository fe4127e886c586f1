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
    if mode == "reflect" and torch.onnx.is_in_onnx_export():
        return _reflect_by_index(x, left, right)
    length = x.shape[-1]
    max_pad = max(left, right)
    extra = 0
    if mode == "reflect" and length <= max_pad:
        extra = max_pad - length + 1
        x = F.pad(x, (0, extra))
    elif mode == "reflect" and x.dim() == 4:
        # channels-last [B, C, 1, T] (the SEANet encoder's inference path): torch's reflect kernel keeps
        # the layout, where a concatenation of flipped slices would come out channels-first (5x slower)
        return F.pad(x, (left, right, 0, 0), mode="reflect")
    elif mode == "reflect":
        # the same values as F.pad(mode="reflect"), whose CPU kernels (forward and backward) cost
        # ~7 % of a SEANet encoder's training step at 16 kHz; a concatenation of flipped edges does not
        left_edge = [x[..., 1 : left + 1].flip(-1)] if left else []
        right_edge = [x[..., length - right - 1 : length - 1].flip(-1)] if right else []
        return torch.cat([*left_edge, x, *right_edge], dim=-1)
    pads = (left, right) if x.dim() < 4 else (left, right, 0, 0)  # torch pads two dims of a 4-D input
    padded = F.pad(x, pads, mode=mode)
    return padded[..., : padded.shape[-1] - extra]


def _reflect_by_index(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """`pad1d(x, left, right, "reflect")` as one gather whose indices follow the input's length, for ONNX
    export: the branches above compare and slice with Python ints, which a traced graph would freeze at
    the length it was traced with. The same values in both of pad1d's cases: reflection about the ends
    of the input zero-extended to at least max(left, right) + 1 samples, cut back to its padded length."""
    length = torch._shape_as_tensor(x)[-1]
    span = torch.clamp(length, min=max(left, right) + 1)  # the (zero-extended) signal that is reflected
    position = torch.arange(length + left + right, device=x.device) - left  # type: ignore[call-overload]
    index = position.abs()
    index = torch.where(index >= span, 2 * (span - 1) - index, index)
    index = torch.where(index < length, index, length)  # past the input: the zero appended below
    return F.pad(x, (0, 1)).index_select(-1, index)
