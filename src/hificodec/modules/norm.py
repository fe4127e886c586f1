"""Weight normalisation choices for convolutions (weight norm by default, as in EnCodec and HiFi-GAN)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from .cache import DerivedCache

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


class InferenceWeight:
    """A parametrised conv's weight computed once and reused while no gradient is being recorded.

    Weight norm recomputes `g * v / |v|` on every call; at inference that is repeated work. The cache
    is keyed on the version counters of the underlying tensors, so an optimiser step or a
    `load_state_dict` recomputes it, and the value is the very tensor the parametrisation would give
    (bit for bit). The state dict keeps the parametrised names (checkpoints and model hashes unchanged).
    """

    def __init__(self) -> None:
        self._cache: DerivedCache[tuple[torch.Tensor, torch.Tensor]] = DerivedCache()

    def get(self, module: nn.Conv1d) -> torch.Tensor:
        if torch.is_grad_enabled() or not parametrize.is_parametrized(module, "weight"):
            return module.weight
        return self._weights(module)[0]

    def get_2d(self, module: nn.Conv1d) -> torch.Tensor:
        """The weight as a [out, in, 1, k] channels-last conv2d kernel (see `SConv1d.forward`)."""
        return self._weights(module)[1]

    def _weights(self, module: nn.Conv1d) -> tuple[torch.Tensor, torch.Tensor]:
        def compute() -> tuple[torch.Tensor, torch.Tensor]:
            weight = module.weight.detach().clone()
            return weight, weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)

        return self._cache.get(list(module.parameters()), compute)
