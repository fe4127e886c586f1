"""Group-residual vector quantization (GRVQ, HiFi-Codec): split channels into groups, quantize each
group with its own ResidualVQ, concatenate.

Codebook order (the `n_q` axis of codes), stage-major as in the original HiFi-Codec:
    index k = stage * groups + group
e.g. 2 groups x depth 2 -> [g0s0, g1s0, g0s1, g1s1]. Keeping the first n codebooks (n a multiple of
`groups`) therefore keeps the same number of stages in every group: a valid lower bitrate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from .base import QuantizerOutput
from .residual import ResidualVQ, sample_stage_counts


def _interleave(per_group: list[torch.Tensor]) -> torch.Tensor:
    """[G] x [B, S, ...] (group-wise) -> [B, S*G, ...] stage-major."""
    stacked = torch.stack(per_group, dim=2)  # [B, S, G, ...]
    return stacked.flatten(1, 2)


def _deinterleave(codes: torch.Tensor, groups: int) -> list[torch.Tensor]:
    """[B, S*G, F] stage-major -> [G] x [B, S, F]."""
    b, n, f = codes.shape
    return list(codes.view(b, n // groups, groups, f).unbind(dim=2))


class GroupResidualVQ(nn.Module):
    def __init__(
        self,
        dim: int,
        groups: int,
        depth: int,
        codebook_size: int,
        *,
        quantizer_dropout: float = 0.0,
        dropout_choices: Sequence[int] | None = None,
        **vq_kwargs: Any,
    ) -> None:
        """`dropout_choices` are stage counts (the same in every group), default 1..depth."""
        super().__init__()
        if dim % groups:
            raise ValueError(f"GroupResidualVQ: dim {dim} is not divisible by groups {groups}")
        self.dim = dim
        self.groups = groups
        self.depth = depth
        self.codebook_size = codebook_size
        self.quantizer_dropout = quantizer_dropout
        self.dropout_choices = list(dropout_choices) if dropout_choices else None
        # a ModuleList at run time; typed as the list of residual quantizers it holds
        self.rvqs = cast(
            "list[ResidualVQ]",
            nn.ModuleList(ResidualVQ(dim // groups, depth, codebook_size, **vq_kwargs) for _ in range(groups)),
        )

    @property
    def num_codebooks(self) -> int:
        return self.groups * self.depth

    def set_num_codebooks(self, n: int) -> None:
        if n % self.groups or not 0 < n <= self.num_codebooks:
            raise ValueError(
                f"GroupResidualVQ: codebooks must be a multiple of {self.groups} up to {self.num_codebooks}, got {n}"
            )
        for rvq in self.rvqs:
            rvq.set_active_depth(n // self.groups)

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        b = x.shape[0]
        if self.training:
            n_stages = sample_stage_counts(b, self.depth, self.quantizer_dropout, self.dropout_choices, x.device)
        else:
            n_stages = self.rvqs[0].sample_stages(b, x.device)
        outs = [rvq(chunk, n_stages) for rvq, chunk in zip(self.rvqs, x.chunk(self.groups, dim=1))]
        losses: dict[str, torch.Tensor] = {}
        for out in outs:
            for name, value in out.losses.items():
                losses[name] = losses.get(name, 0.0) + value
        return QuantizerOutput(
            quantized=torch.cat([o.quantized for o in outs], dim=1),
            codes=_interleave([o.codes for o in outs]),
            losses=losses,
            perplexity=_interleave([o.perplexity.unsqueeze(0) for o in outs]).squeeze(0),
            usage=_interleave([o.usage.unsqueeze(0) for o in outs]).squeeze(0),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, dim, F] -> codes [B, active codebooks, F] in stage-major order."""
        return _interleave([rvq.encode(chunk) for rvq, chunk in zip(self.rvqs, x.chunk(self.groups, dim=1))])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, n, F], n a multiple of `groups` -> [B, dim, F]."""
        if codes.shape[1] % self.groups or codes.shape[1] > self.num_codebooks:
            raise ValueError(
                f"GroupResidualVQ: got {codes.shape[1]} codebooks; need a multiple of {self.groups} "
                f"up to {self.num_codebooks}"
            )
        parts = _deinterleave(codes, self.groups)
        return torch.cat([rvq.decode(c) for rvq, c in zip(self.rvqs, parts)], dim=1)
