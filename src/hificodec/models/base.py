"""The codec interface every model family (HiFi-Codec, Encodec, SoundStream) implements.

A model maps audio tensors to codes and back; bitstreams, files and datasets are functions that take
a model (`hificodec.compress`, `hificodec.tokenize`), so models import none of them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import HificodecError
from ..pcm import as_audio


@dataclass
class CodecOutput:
    """What `CodecModel.forward` returns for training.

    audio:      [B, 1, T] reconstruction, same length as the input
    codes:      [B, n_q, F] codes used for this reconstruction
    losses:     quantizer losses by name ("commitment", "codebook"), unweighted scalars
    perplexity: [n_q] per-codebook perplexity in this batch
    usage:      [n_q] per-codebook fraction of entries used in this batch
    latent:     [B, D, F] encoder output before quantization (for analysis / extra losses)
    pitch:      [B, 2, F] pitch-head output (log2(f0 / 100 Hz), voicing logit) when the model has one
    """

    audio: torch.Tensor
    codes: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    perplexity: torch.Tensor | None = None
    usage: torch.Tensor | None = None
    latent: torch.Tensor | None = None
    pitch: torch.Tensor | None = None


class CodecModel(nn.Module, ABC):
    """A waveform codec: wav [B, 1, T] -> codes [B, n_q, F] (int64) -> wav [B, 1, T].

    Subclasses set `sample_rate`, `hop_length`, `codebook_size`, `max_codebooks`, `config`, and
    implement `encode`, `decode`, `forward`, `_set_active_codebooks`.
    """

    sample_rate: int
    hop_length: int
    codebook_size: int
    max_codebooks: int
    #: codebooks must be kept in multiples of this (GRVQ keeps the same depth in every group)
    codebook_step: int = 1
    #: True when the output at time t depends only on input up to t (streamable with state)
    causal: bool = False
    #: decoding a window of codes gives the same audio as a whole-file decode only when the window
    #: starts at a multiple of this frame index (a phase-advance iSTFT head repeats every few frames)
    decode_alignment: int = 1
    #: the full config the model was built from (saved with checkpoints)
    config: dict[str, Any]
    #: the release id ("hificodec-16k@5") when the weights are a shipped release, else None
    release: str | None = None
    #: the folder `hificodec.load` read the model from (absolute), None for a model built in memory
    model_dir: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self._num_codebooks: int | None = None

    # ---- rate properties -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.config.get("name", type(self).__name__))

    @property
    def frame_rate(self) -> float:
        """Code frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def num_codebooks(self) -> int:
        """Codebooks used by `encode` (and by `forward` outside training)."""
        return self._num_codebooks if self._num_codebooks is not None else self.max_codebooks

    @property
    def bits_per_code(self) -> int:
        return math.ceil(math.log2(self.codebook_size))

    @property
    def bitrate(self) -> float:
        """Bits per second at the current number of codebooks."""
        return self.frame_rate * self.num_codebooks * self.bits_per_code

    @property
    def bandwidths(self) -> list[float]:
        """Selectable bitrates in kbps (one per valid codebook count)."""
        steps = range(self.codebook_step, self.max_codebooks + 1, self.codebook_step)
        return [self.frame_rate * n * self.bits_per_code / 1000 for n in steps]

    def set_num_codebooks(self, n: int) -> None:
        """Use the first `n` codebooks (variable bitrate); must be a positive multiple of `codebook_step`."""
        if not (0 < n <= self.max_codebooks) or n % self.codebook_step:
            raise ValueError(
                f"{self.name}: num_codebooks must be a multiple of {self.codebook_step} "
                f"between {self.codebook_step} and {self.max_codebooks}, got {n}"
            )
        self._num_codebooks = n
        self._set_active_codebooks(n)

    def set_target_bandwidth(self, kbps: float) -> None:
        """Pick the largest codebook count whose bitrate does not exceed `kbps` (the highest one for
        anything above it)."""
        if not (isinstance(kbps, (int, float)) and math.isfinite(kbps) and kbps > 0):
            raise ValueError(f"{self.name}: the target bandwidth must be a positive number of kbps, got {kbps}")
        per_step = self.frame_rate * self.codebook_step * self.bits_per_code / 1000
        n = int(math.floor(kbps / per_step + 1e-9)) * self.codebook_step
        if n < self.codebook_step:
            raise ValueError(
                f"{self.name}: {kbps} kbps is below the lowest bitrate {per_step:g} kbps "
                f"(available: {', '.join(f'{b:g}' for b in self.bandwidths)})"
            )
        self.set_num_codebooks(min(n, self.max_codebooks))

    def _pad(self, wav: torch.Tensor) -> torch.Tensor:
        """Check wav [B, 1, T] (a tensor or numpy array, float or integer PCM: `pcm.as_audio`) and
        zero-pad it to a whole number of hops (what encode codes), as float32."""
        wav = as_audio(wav)
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"{self.name}: expected wav of shape [batch, 1, samples], got {tuple(wav.shape)}")
        if wav.shape[-1] == 0:
            raise ValueError(f"{self.name}: empty input")
        extra = -wav.shape[-1] % self.hop_length
        return torch.nn.functional.pad(wav, (0, extra)) if extra else wav

    def num_frames(self, num_samples: int) -> int:
        """Code frames for an input of `num_samples` (the input is padded up to a multiple of the hop)."""
        return math.ceil(num_samples / self.hop_length)

    # ---- the codec -------------------------------------------------------------------------
    @abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, 1, T] float in [-1, 1] -> codes [B, num_codebooks, ceil(T / hop)] int64."""

    @abstractmethod
    def latent(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, 1, T] -> continuous pre-quantizer latent [B, D, ceil(T / hop)]."""

    @abstractmethod
    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """codes [B, n_q, F] (n_q <= max_codebooks) -> wav [B, 1, length or F * hop]."""

    def decode_window(
        self, codes: torch.Tensor, keep_start: int, keep_end: int, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode a window of codes [B, n_q, F] of a longer stream, of which frames [keep_start, keep_end)
        will be kept -> (wav [B, 1, F * hop], the state the next window needs). `state` carries what a
        decoder accumulates over the whole stream (the pitch component's oscillator phase, `models.pitch`):
        None at the stream's start. Chunked decoding goes through here, so it matches a whole-file decode."""
        return self.decode(codes), None

    # ---- streaming (models.streaming) --------------------------------------------------------
    def streaming_encoder(self) -> Any:
        """A push-style encoder that codes audio as it arrives (`push(pcm) -> codes`, `flush()`)."""
        raise HificodecError(f"streaming is not supported for {self.name}")

    def streaming_decoder(self) -> Any:
        """A push-style decoder that turns code frames into audio as they arrive (`push(codes) -> wav`)."""
        raise HificodecError(f"streaming is not supported for {self.name}")

    def algorithmic_latency(self) -> Any:
        """How far streamed output lags input (`models.streaming.AlgorithmicLatency`)."""
        raise HificodecError(f"streaming is not supported for {self.name}")

    @abstractmethod
    def forward(self, wav: torch.Tensor) -> CodecOutput:  # type: ignore[override]
        """Training pass: encode, quantize (with quantizer dropout when enabled), decode."""

    @abstractmethod
    def _set_active_codebooks(self, n: int) -> None: ...
