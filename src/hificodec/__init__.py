"""hificodec: neural audio codecs (HiFi-Codec with group-residual VQ, Encodec, SoundStream)."""

__version__ = "0.1.0"
