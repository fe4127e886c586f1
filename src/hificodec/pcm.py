"""Samples and codes as the models take them, from whatever array a caller holds.

One rule for the model API (`CodecModel.encode`/`latent`, `decode`), the streaming API
(`StreamingEncoder.push`, `StreamingDecoder.push`) and `compress`:

- audio may be a torch tensor or a numpy array of any float type (float16/32/64, bfloat16: converted
  to float32, values taken as they are, full scale 1.0) or integer PCM, scaled to [-1, 1) as audio
  files store it: int16 / 32768, int32 / 2**31, int8 / 128, uint8 (8-bit WAV, unsigned, centred on
  128) as (x - 128) / 128. int64, bool and complex samples have no such convention and are refused
  with one line (`AudioError`), never read as raw amplitudes;
- codes may be a torch tensor or a numpy array of any integer type (read as int64); float or bool
  codes are refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import AudioError

#: integer PCM type -> (offset, scale): float = (x - offset) / scale
PCM_SCALES: dict[torch.dtype, tuple[int, float]] = {
    torch.int16: (0, 32768.0),
    torch.int32: (0, 2.0**31),
    torch.int8: (0, 128.0),
    torch.uint8: (128, 128.0),
}


def _tensor(x: Any, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biufc":
            raise AudioError(f"{what}: cannot use a numpy array of {x.dtype}")
        return torch.from_numpy(np.ascontiguousarray(x))
    raise AudioError(f"{what}: expected a torch tensor or a numpy array, got {type(x).__name__}")


def as_audio(wav: Any) -> torch.Tensor:
    """`wav` (tensor or numpy array, float or integer PCM, any shape) -> float32 tensor of the same
    shape, on the same device; see the module docstring for the rule."""
    x = _tensor(wav, "audio")
    if x.dtype == torch.float32:
        return x
    if x.is_floating_point():
        return x.float()
    if x.dtype in PCM_SCALES:
        offset, scale = PCM_SCALES[x.dtype]
        return (x.float() - offset) / scale
    raise AudioError(
        f"audio of type {str(x.dtype).replace('torch.', '')} has no sample convention: pass float samples "
        "in [-1, 1] or integer PCM (int16, int32, int8 or uint8)"
    )


def as_codes(codes: Any) -> torch.Tensor:
    """`codes` (tensor or numpy array of an integer type) -> int64 tensor of the same shape."""
    x = _tensor(codes, "codes")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise AudioError(f"codes must be integers, got {str(x.dtype).replace('torch.', '')}")
    return x.long()
