"""Residual vector quantization: each stage quantizes what the previous stages left over."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from .base import QuantizerOutput
from .vq import VectorQuantizer


def sample_stage_counts(
    batch: int, depth: int, dropout: float, choices: Sequence[int] | None, device: torch.device
) -> torch.Tensor:
    """Per-sample number of stages for quantizer dropout: with probability `dropout` a random
    count from `choices` (default 1..depth), otherwise all `depth` stages."""
    full = torch.full((batch,), depth, dtype=torch.long, device=device)
    if dropout <= 0:
        return full
    options = torch.tensor(list(choices) if choices else range(1, depth + 1), device=device)
    picked = options[torch.randint(0, len(options), (batch,), device=device)]
    drop = torch.rand(batch, device=device) < dropout
    return torch.where(drop, picked, full)


class ResidualVQ(nn.Module):
    """`depth` VectorQuantizers applied to successive residuals; codes [B, depth, F] in stage order.

    Quantizer dropout (training only): each sample uses a random number of stages, so one model
    serves several bitrates. All stages still run on every sample, which keeps every codebook
    training and gives every distributed rank the same collectives.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        codebook_size: int,
        *,
        quantizer_dropout: float = 0.0,
        dropout_choices: Sequence[int] | None = None,
        **vq_kwargs: Any,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.depth = depth
        self.codebook_size = codebook_size
        self.quantizer_dropout = quantizer_dropout
        self.dropout_choices = list(dropout_choices) if dropout_choices else None
        # a ModuleList at run time; typed as the list of quantizers it holds
        self.layers = cast(
            "list[VectorQuantizer]",
            nn.ModuleList(VectorQuantizer(dim, codebook_size, **vq_kwargs) for _ in range(depth)),
        )
        self.active_depth = depth

    def set_active_depth(self, n: int) -> None:
        if not 0 < n <= self.depth:
            raise ValueError(f"ResidualVQ: depth must be in 1..{self.depth}, got {n}")
        self.active_depth = n

    def sample_stages(self, batch: int, device: torch.device) -> torch.Tensor:
        if not self.training:
            return torch.full((batch,), self.active_depth, dtype=torch.long, device=device)
        return sample_stage_counts(batch, self.depth, self.quantizer_dropout, self.dropout_choices, device)

    def forward(self, x: torch.Tensor, n_stages: torch.Tensor | None = None) -> QuantizerOutput:
        """x [B, dim, F]; n_stages [B] overrides the per-sample stage count (used by GroupResidualVQ)."""
        if n_stages is None:
            n_stages = self.sample_stages(x.shape[0], x.device)
        run = self.depth if self.training else self.active_depth
        residual = x
        quantized = torch.zeros_like(x)
        codes, perplexity, usage = [], [], []
        losses: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers[:run]):
            out = layer(residual)
            keep = (n_stages > i).to(x.dtype).view(-1, 1, 1)
            quantized = quantized + out.quantized * keep
            # Detached, so each stage's commitment term pulls the encoder towards the full sum.
            residual = residual - out.quantized.detach()
            codes.append(out.codes)
            perplexity.append(out.perplexity)
            usage.append(out.usage)
            for name, value in out.losses.items():
                losses[name] = losses.get(name, 0.0) + value
        return QuantizerOutput(
            quantized=quantized,
            codes=torch.cat(codes, dim=1),
            losses=losses,
            perplexity=torch.cat(perplexity),
            usage=torch.cat(usage),
        )

    def encode(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """[B, dim, F] -> codes [B, depth, F]."""
        residual = x
        codes = []
        for layer in self.layers[: depth or self.active_depth]:
            c = layer.encode(residual)
            residual = residual - layer.decode(c)
            codes.append(c)
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, n, F] (n <= depth) -> [B, dim, F]."""
        if codes.shape[1] > self.depth:
            raise ValueError(f"ResidualVQ: got {codes.shape[1]} codebooks, the quantizer has {self.depth}")
        out = self.layers[0].decode(codes[:, 0])
        for i in range(1, codes.shape[1]):
            out = out + self.layers[i].decode(codes[:, i])
        return out
