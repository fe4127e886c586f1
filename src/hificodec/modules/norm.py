"""Weight normalisation choices for convolutions (weight norm by default, as in EnCodec and HiFi-GAN)."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrizations

NORMS = ("weight_norm", "spectral_norm", "none")


def apply_norm(module: nn.Module, norm: str) -> nn.Module:
    """Wrap a conv's weight with the named reparametrisation (`weight_norm`, `spectral_norm`, `none`)."""
    if norm == "weight_norm":
        return parametrizations.weight_norm(module)
    if norm == "spectral_norm":
        return parametrizations.spectral_norm(module)
    if norm == "none":
        return module
    raise ValueError(f"unknown norm '{norm}' (choose from {', '.join(NORMS)})")
