"""Discriminators: multi-period (MPD), multi-scale (MSD), multi-scale STFT (MS-STFT), and a combiner."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .common import DiscriminatorOutput
from .mpd import MultiPeriodDiscriminator
from .msd import MultiScaleDiscriminator
from .msstft import MultiScaleSTFTDiscriminator

DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "mpd": MultiPeriodDiscriminator,
    "msd": MultiScaleDiscriminator,
    "msstft": MultiScaleSTFTDiscriminator,
}


class CombinedDiscriminator(nn.Module):
    """Runs every configured discriminator and concatenates their sub-discriminator outputs."""

    def __init__(self, config: dict[str, dict[str, Any]]):
        super().__init__()
        unknown = set(config) - set(DISCRIMINATORS)
        if unknown:
            raise ValueError(f"unknown discriminators {sorted(unknown)} (known: {', '.join(DISCRIMINATORS)})")
        self.config = {k: dict(v or {}) for k, v in config.items()}
        self.discriminators = nn.ModuleDict(
            {name: DISCRIMINATORS[name](**_tuples(kw)) for name, kw in self.config.items()}
        )

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        out = DiscriminatorOutput()
        for d in self.discriminators.values():
            out.extend(d(x))
        return out


def _tuples(kw: dict[str, Any]) -> dict[str, Any]:
    # YAML gives lists; conv arguments such as kernel_size want tuples
    return {k: tuple(v) if isinstance(v, list) and k in ("kernel_size", "stride") else v for k, v in kw.items()}


def build_discriminator(config: dict[str, dict[str, Any]] | None) -> CombinedDiscriminator | None:
    """None (generator-only training) when no discriminator is configured."""
    if not config:
        return None
    return CombinedDiscriminator(config)


__all__ = [
    "CombinedDiscriminator",
    "DiscriminatorOutput",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "MultiScaleSTFTDiscriminator",
    "build_discriminator",
]
