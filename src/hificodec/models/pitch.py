"""Pitch conditioning: the codec's pitch parts as one component that a model config plugs in.

- `condition`: YIN features of the input (log-f0, voicing, periodicity) added to the encoder output
  through a zero-initialised 1x1 conv (config `pitch_input`), so pitch reaches the codes without the
  encoder having to learn a pitch tracker; zero at the start, so a fine-tune begins unchanged.
- `predict`: a small head reads f0 and voicing back from the quantized latent (config `pitch_head`;
  trained by the recipe's f0/voicing losses).
- `excitation`: a harmonic oscillator at the predicted f0 for a decoder head with an excitation gain
  (config `decoder.excitation`), its phase carried from decode window to decode window so that
  chunked decoding gives the whole-file phase.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import torch
from torch import nn

from ..dsp.oscillator import harmonic_excitation, oscillator_cycles
from ..dsp.pitch import TrackerSettings, estimate_f0, pitch_features
from ..errors import ConfigError
from ..modules.pitch import PitchHead, pitch_to_hz


def tracker_settings(setting: Any) -> TrackerSettings | None:
    """`pitch_input`: absent/false (off), true (default tracker) or tracker settings for `estimate_f0`."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return TrackerSettings()
    keys = [f.name for f in fields(TrackerSettings)]
    if not isinstance(setting, dict) or set(setting) - set(keys):
        raise ConfigError(f"pitch_input must be true or a mapping with keys among {', '.join(keys)}")
    return TrackerSettings(**setting)


class PitchConditioning:
    """The pitch input, the pitch head and the oscillator of one model.

    Not an nn.Module of its own: the model registers `input` and `head` as its `pitch_input` and
    `pitch_head`, the names its checkpoints (and the weights hash in .hfc headers) have always used.
    """

    def __init__(
        self,
        latent_dim: int,
        sample_rate: int,
        hop_length: int,
        tracker: TrackerSettings | None,
        head: dict[str, Any] | None,
    ) -> None:
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.tracker = tracker
        self.input: nn.Conv1d | None = None
        if tracker is not None:
            self.input = nn.Conv1d(3, latent_dim, 1)
            for tensor in self.input.parameters():
                nn.init.zeros_(tensor)
        self.head = PitchHead(latent_dim, **head) if head else None

    def condition(self, latent: torch.Tensor, wav: torch.Tensor) -> torch.Tensor:
        """Encoder output [B, D, F] of the (hop-padded) input wav [B, 1, F * hop] -> with the input's
        pitch features added (unchanged without a pitch input)."""
        if self.input is None or self.tracker is None:
            return latent
        track = estimate_f0(wav, self.sample_rate, self.hop_length, **asdict(self.tracker))
        return latent + self.input(pitch_features(track).to(latent.dtype))

    def predict(self, quantized: torch.Tensor) -> torch.Tensor:
        """Quantized latent [B, D, F] -> [B, 2, F]: log2(f0 / 100 Hz) and a voicing logit per frame."""
        if self.head is None:
            raise ConfigError("this model has no pitch head (its config has no 'pitch_head')")
        return self.head(quantized)

    def excitation(
        self, pitch: torch.Tensor, start_frame: int = 0, phase: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pitch-head output [B, 2, F] -> (harmonic oscillator [B, F * hop], its running phase in cycles
        [B, F * hop]), with `phase` [B] cycles passed before frame `start_frame` (None: a stream's start)."""
        f0, voicing = pitch_to_hz(pitch.detach())
        cycles = oscillator_cycles(f0, self.sample_rate, self.hop_length, start_frame * self.hop_length, phase)
        return harmonic_excitation(f0, voicing, self.sample_rate, self.hop_length, cycles), cycles

    def carried_phase(self, cycles: torch.Tensor, frame: int) -> torch.Tensor:
        """The phase [B] to pass to `excitation` for the window that continues at `frame` (> 0)."""
        return cycles[:, frame * self.hop_length - 1]


def build_pitch_conditioning(
    cfg: dict[str, Any], latent_dim: int, sample_rate: int, hop_length: int
) -> PitchConditioning | None:
    """The component from a model config's `pitch_input` and `pitch_head`; None when it has neither."""
    tracker = tracker_settings(cfg.get("pitch_input"))
    head = cfg.get("pitch_head")
    if tracker is None and not head:
        return None
    return PitchConditioning(latent_dim, sample_rate, hop_length, tracker, head)
