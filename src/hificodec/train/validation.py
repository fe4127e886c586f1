"""Validation during training: losses on held-out clips, PESQ/STOI at 16 kHz on a few of them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..audio import load_audio
from ..data.manifest import ManifestEntry
from ..errors import AudioError
from ..eval.metrics import MetricError, pesq_wb, stoi

log = logging.getLogger(__name__)


@dataclass
class ValidationResult:
    losses: dict[str, float]
    pesq: float | None = None
    stoi: float | None = None
    clips: int = 0
    examples: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (real, fake) at model rate


def load_validation_clips(
    entries: Sequence[ManifestEntry], sample_rate: int, max_clips: int, max_seconds: float
) -> list[torch.Tensor]:
    """The first `max_clips` readable clips, cropped to `max_seconds`, as [1, 1, T] tensors."""
    clips: list[torch.Tensor] = []
    for entry in entries:
        if len(clips) >= max_clips:
            break
        try:
            audio, _ = load_audio(entry.path, sample_rate, mono=True)
        except AudioError as e:
            log.warning("validation: skipping %s", e)
            continue
        clips.append(torch.from_numpy(audio[:, : int(max_seconds * sample_rate)])[None])
    return clips


def pesq_stoi(real: np.ndarray, fake: np.ndarray, sample_rate: int) -> tuple[float | None, float | None]:
    """PESQ wide-band and STOI as `hificodec eval` computes them (`hificodec.eval.metrics`: 16 kHz,
    soxr); None where a metric is undefined for the clip (silent, too short), never a placeholder."""
    n = min(len(real), len(fake))
    scores: list[float | None] = []
    for metric in (pesq_wb, stoi):
        try:
            scores.append(metric(real[:n], fake[:n], sample_rate))
        except MetricError as e:
            log.warning("validation: %s skipped (%s)", metric.__name__, e)
            scores.append(None)
    return scores[0], scores[1]


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    clips: Sequence[torch.Tensor],
    loss_fns: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
    sample_rate: int,
    metric_clips: int,
    device: torch.device,
) -> ValidationResult:
    """Run the model (eval mode, all codebooks) on each clip; average losses; score a few clips."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {name: 0.0 for name in loss_fns}
    pesqs, stois, examples = [], [], []
    try:
        for i, clip in enumerate(clips):
            real = clip.to(device)
            fake = model(real).audio.float()[..., : real.shape[-1]]
            for name, fn in loss_fns.items():
                sums[name] += float(fn(fake, real))
            if i < metric_clips:
                r, f = real[0, 0].cpu().numpy(), fake[0, 0].cpu().numpy()
                p, s = pesq_stoi(r, f, sample_rate)
                if p is not None:
                    pesqs.append(p)
                if s is not None:
                    stois.append(s)
                examples.append((r, f))
    finally:
        model.train(was_training)
    n = max(len(clips), 1)
    return ValidationResult(
        losses={k: v / n for k, v in sums.items()},
        pesq=float(np.mean(pesqs)) if pesqs else None,
        stoi=float(np.mean(stois)) if stois else None,
        clips=len(clips),
        examples=examples,
    )
