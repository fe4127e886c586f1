"""hificodec: neural audio codecs (HiFi-Codec with group-residual VQ, Encodec, SoundStream).

import hificodec
model = hificodec.load("hificodec-16k")        # shipped model, or a checkpoint directory
codes = model.encode(wav)                     # wav [B, 1, T] -> codes [B, n_q, frames]
wav_hat = model.decode(codes, length=T)
data = hificodec.compress.compress(model, wav[0, 0].numpy(), 16000)   # .hfc bytes; also encode_file
audio, sr = hificodec.decompress(data, model)                          # decode_file for files
untrained = hificodec.build("hificodec-16k-320d")   # any preset
"""

from .checkpoint import build, list_models, load, save, weights_hash
from .compress import decompress
from .config import list_presets
from .errors import AudioError, CheckpointError, ConfigError, HificodecError
from .models import Codec, CodecModel, CodecOutput

__version__ = "0.1.0"

#: the model the CLI uses when none is given
DEFAULT_MODEL = "hificodec-16k-mel"

__all__ = [
    "DEFAULT_MODEL",
    "AudioError",
    "CheckpointError",
    "Codec",
    "CodecModel",
    "CodecOutput",
    "ConfigError",
    "HificodecError",
    "build",
    "decompress",
    "list_models",
    "list_presets",
    "load",
    "save",
    "weights_hash",
]
