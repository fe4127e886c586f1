"""Weight normalisation choices for convolutions (weight norm by default, as in EnCodec and HiFi-GAN)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

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
        self._key: tuple[int, ...] | None = None
        self._weight: torch.Tensor | None = None

    def get(self, module: nn.Conv1d) -> torch.Tensor:
        if torch.is_grad_enabled() or not parametrize.is_parametrized(module, "weight"):
            return module.weight
        parametrizations: nn.ModuleDict = module.parametrizations  # type: ignore[assignment]
        originals = list(parametrizations["weight"].parameters())
        key = tuple(x for t in originals for x in (id(t), t._version, t.data_ptr()))
        if self._key != key or self._weight is None:
            with torch.inference_mode(False), torch.no_grad():
                self._weight = module.weight.detach().clone()
            self._key = key
        return self._weight
