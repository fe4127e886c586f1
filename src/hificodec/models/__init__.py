"""Codec models: one interface (`CodecModel`), one configurable implementation (`Codec`)."""

from .base import CodecModel, CodecOutput
from .codec import FAMILIES, Codec

__all__ = ["CodecModel", "CodecOutput", "Codec", "FAMILIES"]
