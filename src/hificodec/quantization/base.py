"""What every quantizer returns, so VQ, residual VQ and group-residual VQ are interchangeable."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class QuantizerOutput:
    """Result of a quantizer's forward pass.

    quantized:  [B, D, F] quantized latent (straight-through: gradients flow to the input)
    codes:      [B, n_q, F] int64 code indices, in the quantizer's documented codebook order
    losses:     named scalar losses ("commitment", "codebook"), unweighted
    perplexity: [n_q] per-codebook perplexity of the codes in this batch (exp of code entropy)
    usage:      [n_q] per-codebook fraction of entries used at least once in this batch
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    perplexity: torch.Tensor | None = None
    usage: torch.Tensor | None = None
