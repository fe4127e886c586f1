"""What every discriminator returns, and the weight-norm / spectral-norm wrappers they share."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm


@dataclass
class DiscriminatorOutput:
    """One entry per sub-discriminator (a period, a scale, an STFT resolution)."""

    logits: list[torch.Tensor] = field(default_factory=list)
    features: list[list[torch.Tensor]] = field(default_factory=list)

    def extend(self, other: DiscriminatorOutput) -> None:
        self.logits.extend(other.logits)
        self.features.extend(other.features)

    def split(self, n_first: int) -> tuple[DiscriminatorOutput, DiscriminatorOutput]:
        """Split a pass over a concatenated [first; second] batch into the two halves."""
        a, b = DiscriminatorOutput(), DiscriminatorOutput()
        for logit, feats in zip(self.logits, self.features):
            a.logits.append(logit[:n_first])
            b.logits.append(logit[n_first:])
            a.features.append([f[:n_first] for f in feats])
            b.features.append([f[n_first:] for f in feats])
        return a, b


def normed(module: nn.Module, norm: str) -> nn.Module:
    if norm == "weight_norm":
        return weight_norm(module)
    if norm == "spectral_norm":
        return spectral_norm(module)
    if norm in ("none", None):
        return module
    raise ValueError(f"unknown norm '{norm}' (use weight_norm, spectral_norm or none)")
