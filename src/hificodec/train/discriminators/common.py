"""What every discriminator returns, and helpers they share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ...modules.norm import apply_norm


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


def normed(module: nn.Module, norm: str | None) -> nn.Module:
    return apply_norm(module, norm or "none")


def run_each(discriminators: Iterable[nn.Module], x: torch.Tensor) -> DiscriminatorOutput:
    """Run sub-discriminators that each return (logit, features) on the same input."""
    out = DiscriminatorOutput()
    for d in discriminators:
        logit, feats = d(x)
        out.logits.append(logit)
        out.features.append(feats)
    return out
