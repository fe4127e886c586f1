"""The encoder -> group-residual VQ -> decoder codec that all three families are configurations of.

HiFi-Codec: HiFi-GAN-style encoder/decoder, GRVQ with 2 groups (gradient-learned codebooks).
Encodec / SoundStream: SEANet encoder/decoder with LSTM, residual VQ (= 1 group) with EMA codebooks,
k-means init and dead-code restart, and quantizer dropout over the target bandwidths. (SoundStream
differs from Encodec in training only: clip mixing and feature-matching terms in its recipe.)
"""

from __future__ import annotations

import copy
import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..dsp.pitch import PitchTrack
from ..errors import ConfigError, HificodecError
from ..modules.hifigan import HiFiGANEncoder, HiFiGANGenerator
from ..modules.melencoder import MelEncoder
from ..modules.pitch import PitchHead
from ..modules.seanet import SEANetDecoder, SEANetEncoder
from ..modules.vocos import DEFAULT_DIM, ISTFTHead, VocosDecoder
from ..pcm import as_codes
from ..quantization import GroupResidualVQ
from .base import CodecModel, CodecOutput
from .pitch import build_pitch_conditioning
from .streaming import AlgorithmicLatency, StreamingDecoder, StreamingEncoder, algorithmic_latency

FAMILIES = ("hificodec", "encodec", "soundstream")


def _build_encoder(cfg: dict[str, Any], latent_dim: int, sample_rate: int) -> nn.Module:
    kw = {k: v for k, v in cfg.items() if k != "type"}
    kind = cfg.get("type")
    if kind == "hifigan":
        return HiFiGANEncoder(out_channels=latent_dim, **kw)
    if kind == "seanet":
        return SEANetEncoder(dimension=latent_dim, **kw)
    if kind == "mel":
        return MelEncoder(dimension=latent_dim, sample_rate=sample_rate, **kw)
    raise ConfigError(f"unknown encoder type '{kind}' (choose hifigan, seanet or mel)")


def _build_decoder(cfg: dict[str, Any], latent_dim: int, hop_length: int) -> nn.Module:
    kw = {k: v for k, v in cfg.items() if k != "type"}
    kind = cfg.get("type")
    if kind == "hifigan":
        return HiFiGANGenerator(in_channels=latent_dim, **kw)
    if kind == "seanet":
        return SEANetDecoder(dimension=latent_dim, **kw)
    if kind == "vocos":
        return _build_vocos(kw, latent_dim, hop_length)
    raise ConfigError(f"unknown decoder type '{kind}' (choose hifigan, seanet or vocos)")


def _build_vocos(kw: dict[str, Any], latent_dim: int, hop_length: int) -> VocosDecoder:
    """A ConvNeXt backbone (dim, hidden_dim, num_layers, kernel_size, causal; upsample, upsampled_layers)
    with an iSTFT head (n_fft, default 4 of its hops; phase_advance; excitation; frame_shift) at the
    encoder's hop divided by `upsample`."""
    upsample = int(kw.get("upsample", 1))
    if upsample < 1 or hop_length % upsample:
        raise ConfigError(f"decoder.upsample must divide the hop {hop_length}, got {upsample}")
    hop_length //= upsample
    n_fft = kw.pop("n_fft", None) or 4 * hop_length
    phase_advance = bool(kw.pop("phase_advance", False))
    excitation = bool(kw.pop("excitation", False))
    frame_shift = int(kw.pop("frame_shift", 0))
    dim = int(kw.get("dim", DEFAULT_DIM))
    head = ISTFTHead(dim, int(n_fft), hop_length, phase_advance, excitation, frame_shift)
    return VocosDecoder(in_channels=latent_dim, head=head, **kw)


def _dropout_choices(cfg: dict[str, Any], frame_rate: float, groups: int, bits: int) -> list[int] | None:
    """Stage counts used by quantizer dropout, from the preset's target bandwidths (kbps) if given."""
    bandwidths = cfg.get("bandwidths")
    if not bandwidths:
        return None
    per_stage_kbps = frame_rate * groups * bits / 1000
    return sorted({max(1, int(math.floor(b / per_stage_kbps + 1e-9))) for b in bandwidths})


class ChannelNorm(nn.Module):
    """Normalise each frame over its channels (no statistics over time, so codes stay local:
    chunked and batched encoding give the same codes as a whole-file pass)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels  # a constant, not x.shape[1]: an ONNX export needs the normalised shape fixed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.transpose(1, 2), (self.channels,)).transpose(1, 2)


def _latent_norm(kind: str, latent_dim: int) -> nn.Module:
    """Latent normalisation guards the quantizer against early blow-ups and constant offsets."""
    if kind in ("none", None, False):
        return nn.Identity()
    if kind == "channel":
        return ChannelNorm(latent_dim)
    raise ConfigError(f"unknown latent_norm '{kind}' (choose none or channel)")


class Codec(CodecModel):
    """Built from a config dict (see the YAML presets); `hificodec.build` is the usual entry point."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        try:
            self._build(self.config)
        except (KeyError, TypeError) as e:
            raise ConfigError(f"invalid model config '{config.get('name', '?')}': {e}") from None

    def _build(self, cfg: dict[str, Any]) -> None:
        family = cfg.get("family")
        if family not in FAMILIES:
            raise ConfigError(f"unknown family '{family}' (choose from {', '.join(FAMILIES)})")
        self.family = family
        self.sample_rate = int(cfg["sample_rate"])
        latent_dim = int(cfg["latent_dim"])
        self.encoder = _build_encoder(cfg["encoder"], latent_dim, self.sample_rate)
        self.hop_length = int(cast(Any, self.encoder).hop_length)
        self.decoder = _build_decoder(cfg["decoder"], latent_dim, self.hop_length)
        self.decode_alignment = int(getattr(self.decoder, "frame_period", 1))
        if self.decoder.hop_length != self.hop_length:
            raise ConfigError(
                f"encoder hop {self.hop_length} != decoder hop {self.decoder.hop_length}: "
                "the decoder's rates must multiply to the encoder's"
            )
        pitch_input = cfg.get("pitch_input")
        causal_pitch = not pitch_input or (isinstance(pitch_input, dict) and bool(pitch_input.get("causal")))
        self.causal = (
            bool(cfg["encoder"].get("causal", False)) and bool(cfg["decoder"].get("causal", False)) and causal_pitch
        )
        q = dict(cfg["quantizer"])
        groups, depth, size = int(q.pop("groups", 1)), int(q.pop("depth")), int(q.pop("codebook_size"))
        self.codebook_size = size
        self.max_codebooks = groups * depth
        self.codebook_step = groups
        choices = _dropout_choices(cfg, self.sample_rate / self.hop_length, groups, self.bits_per_code)
        self.quantizer = GroupResidualVQ(latent_dim, groups, depth, size, dropout_choices=choices, **q)
        self.latent_norm = _latent_norm(cfg.get("latent_norm", "none"), latent_dim)
        # optional pitch conditioning (models/pitch.py); its modules keep their checkpoint names
        self.pitch = build_pitch_conditioning(cfg, latent_dim, self.sample_rate, self.hop_length)
        self.pitch_input = self.pitch.input if self.pitch is not None else None
        self.pitch_head = self.pitch.head if self.pitch is not None else None
        # decoders with a harmonic excitation take the pitch component's oscillator (VocosDecoder.uses_excitation)
        self.decoder_uses_excitation = bool(getattr(self.decoder, "uses_excitation", False))
        if self.decoder_uses_excitation and self.pitch_head is None:
            raise ConfigError("decoder.excitation follows the pitch head's f0: add a 'pitch_head'")
        if "num_codebooks" in cfg:
            self.set_num_codebooks(int(cfg["num_codebooks"]))

    def _set_active_codebooks(self, n: int) -> None:
        self.quantizer.set_num_codebooks(n)

    def latent(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, 1, T] -> continuous pre-quantizer latent [B, latent_dim, ceil(T / hop)]."""
        wav = self._pad(wav)
        latent = self.encoder(wav)
        if self.pitch is not None:
            latent = self.pitch.condition(latent, wav)
        return self.latent_norm(latent)

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        latent = self.latent(wav)
        # NaN compares false with every codebook entry, so corrupt weights would give plausible codes
        if not bool(torch.isfinite(latent).all()):
            raise HificodecError(
                f"{self.name}: the encoder produced NaN or infinite values (corrupt weights, or an input that "
                "is not finite)"
            )
        return self.quantizer.encode(latent)

    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        codes = as_codes(codes)
        wav, _ = self.decode_window(codes, 0, codes.shape[-1])
        return wav[..., :length] if length is not None else wav

    def decode_window(
        self, codes: torch.Tensor, keep_start: int, keep_end: int, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        codes = as_codes(codes)
        if codes.dim() != 3:
            raise ValueError(f"{self.name}: expected codes of shape [batch, n_q, frames], got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"{self.name}: codes must lie in [0, {self.codebook_size})")
        quantized = self.quantizer.decode(codes)
        pitch = self.pitch.predict(quantized) if self.decoder_uses_excitation and self.pitch is not None else None
        return self._synthesize(quantized, pitch, keep_start, keep_end, state)

    def _synthesize(
        self, quantized: torch.Tensor, pitch: torch.Tensor | None, keep_start: int, keep_end: int,
        phase: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Quantized latent -> (wav, the oscillator phase the next window needs, or None without one)."""
        if not self.decoder_uses_excitation:
            return self.decoder(quantized), None
        assert self.pitch is not None and pitch is not None
        excitation, cycles = self.pitch.excitation(pitch, keep_start, phase)
        wav = self.decoder(quantized, excitation)
        return wav, self.pitch.carried_phase(cycles, keep_end) if keep_end > 0 else phase

    def streaming_encoder(self) -> StreamingEncoder:
        """Code audio as it arrives: `push(pcm [B, 1, n]) -> codes [B, n_q, k]`, `flush()` at the end;
        the codes equal `encode` of the whole signal (`models.streaming`)."""
        return StreamingEncoder(self)

    def streaming_decoder(self) -> StreamingDecoder:
        """Decode code frames as they arrive: `push(codes [B, n_q, k]) -> wav [B, 1, n]`, `flush()` at the
        end; the audio equals `decode` of all the codes up to float rounding."""
        return StreamingDecoder(self)

    def algorithmic_latency(self) -> AlgorithmicLatency:
        """Frame + encoder lookahead + decoder lookahead: how long after an input sample's time the
        decoded sample at its position can be computed by the streaming path (compute time aside)."""
        return algorithmic_latency(self)

    @torch.no_grad()
    def predict_pitch(self, codes: torch.Tensor) -> PitchTrack:
        """codes [B, n_q, F] -> f0 and voicing per frame, read by the model's pitch head."""
        if self.pitch is None or self.pitch.head is None:
            raise ConfigError(f"{self.name} has no pitch head (its config has no 'pitch_head')")
        return PitchHead.to_track(self.pitch.predict(self.quantizer.decode(codes.long())))

    def forward(self, wav: torch.Tensor) -> CodecOutput:  # type: ignore[override]
        latent = self.latent(wav)
        q = self.quantizer(latent)
        pitch = self.pitch.predict(q.quantized) if self.pitch is not None and self.pitch.head is not None else None
        audio, _ = self._synthesize(q.quantized, pitch, 0, 0, None)
        audio = audio[..., : wav.shape[-1]]
        return CodecOutput(
            audio=audio,
            codes=q.codes,
            losses=q.losses,
            perplexity=q.perplexity,
            usage=q.usage,
            latent=latent,
            pitch=pitch,
        )
