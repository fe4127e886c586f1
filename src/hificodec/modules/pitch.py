"""A small head that reads f0 back from codec latents (trained against the YIN tracker of `dsp.pitch`)."""

from __future__ import annotations

import torch
from torch import nn

from ..dsp.pitch import REFERENCE_HZ, PitchTrack


class PitchHead(nn.Module):
    """Codec latent [B, D, F] -> [B, 2, F]: log2(f0 / 100 Hz) and a voicing logit per frame.

    Small on purpose: its job is to make the latent carry pitch in a readable form, not to be a
    strong pitch model of its own.
    """

    def __init__(self, in_channels: int, channels: int = 256, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"pitch head kernel_size must be odd, got {kernel_size}")
        pad = kernel_size // 2
        self.net = nn.Sequential(
            nn.Conv1d(in_channels, channels, kernel_size, padding=pad),
            nn.GELU(),
            nn.Conv1d(channels, channels, kernel_size, padding=pad),
            nn.GELU(),
            nn.Conv1d(channels, 2, 1),
        )

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net(latent)

    @staticmethod
    def to_track(prediction: torch.Tensor) -> PitchTrack:
        """Head output -> Hz and voicing (voiced where the voicing probability exceeds 0.5)."""
        f0, probability = pitch_to_hz(prediction)
        voiced = probability > 0.5
        return PitchTrack(f0=torch.where(voiced, f0, torch.zeros_like(f0)), voiced=voiced, periodicity=probability)


def pitch_to_hz(prediction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pitch-head output [B, 2, F] -> (f0 in Hz, voicing probability), each [B, F]."""
    octaves = prediction[:, 0].float()
    # torch.exp2 has no ONNX export; pow of 2 is the same function (up to float rounding)
    power = torch.pow(2.0, octaves) if torch.onnx.is_in_onnx_export() else torch.exp2(octaves)
    return REFERENCE_HZ * power, torch.sigmoid(prediction[:, 1].float())
