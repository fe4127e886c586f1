"""Values derived from parameters, kept between inference calls until the parameters change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


class DerivedCache(Generic[T]):
    """`get(tensors, compute)` returns `compute()`, recomputed only when one of `tensors` changes.

    Keyed on each tensor's identity, version counter and storage, so an optimiser step, a
    `load_state_dict` or a move to another device renews the value. `compute` runs outside inference
    mode (the value may later meet autograd-recording code) and without gradient recording.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: T | None = None

    def get(self, tensors: Sequence[torch.Tensor], compute: Callable[[], T]) -> T:
        key = tuple(x for t in tensors for x in (id(t), t._version, t.data_ptr(), t.device))
        if self._key != key or self._value is None:
            with torch.inference_mode(False), torch.no_grad():
                self._value = compute()
            self._key = key
        return self._value
