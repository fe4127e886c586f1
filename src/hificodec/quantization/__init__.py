"""Quantizers that compose: VectorQuantizer -> ResidualVQ -> GroupResidualVQ."""

from .base import QuantizerOutput
from .group import GroupResidualVQ
from .residual import ResidualVQ
from .vq import VectorQuantizer

__all__ = ["QuantizerOutput", "VectorQuantizer", "ResidualVQ", "GroupResidualVQ"]
