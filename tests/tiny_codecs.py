"""Tiny codecs whose codes follow their input, for tests that compare codes.

A freshly built SEANet codec (tiny-encodec, tiny-encodec-causal, tiny-soundstream) gives one constant
code per codebook whatever the input: its k-means-initialised codebooks are only filled by a training
forward, so in eval mode every frame picks the same entry and any "codes are equal" check passes
trivially. Initialising the codebooks alone is not enough: the untrained encoder maps every input to
nearly the same latent (an offset of ~0.3 with a spread of ~0.004 across frames), so the k-means
entries lie 1e-3 apart and float rounding, not the input, decides between them (a whole-file and a
chunked pass then disagree on 2-4 % of the codes). `coding_model` rescales the encoder's last
convolution so that the latent of a calibration batch is centred with unit spread (a legitimate
setting of the same weights), then runs one training forward so that k-means fills the codebooks.

Even so the untrained encoder's response to its input is only ~1e4 times its float rounding, so a
code can still flip where two entries nearly tie when the same audio goes another way through the
model (another batch size, chunking): ~0.1 % of the codes (`code_mismatch`). Tests that compare
such paths allow a measured fraction; the same path gives identical codes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

import hificodec
from hificodec.modules.melencoder import MelEncoder
from hificodec.modules.seanet import SEANetEncoder

#: test-only presets and recipes (not shipped in the wheel): tiny-hificodec, tiny-encodec, ...
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_RECIPES = FIXTURES / "recipes"


def tiny_preset(name: str) -> str:
    """Path of a test-only preset, for `hificodec.build`, `load_config` and eval's `presets`."""
    return str(FIXTURES / "presets" / f"{name}.yaml")


def calibration_audio(sample_rate: int = 16000, seed: int = 0, clips: int = 24) -> torch.Tensor:
    """[clips, 1, 1 s] of vibrato tones (80-2560 Hz) in noise, at random levels.

    Enough frames (1200) for the 64-entry codebooks: with a few hundred, k-means leaves one-frame
    clusters whose zero residuals become duplicate entries in the later stages (exact ties).
    """
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(sample_rate) / sample_rate
    out = []
    for _ in range(clips):
        f0, level, noise = (
            80 * 2 ** (5 * torch.rand(1, generator=g)),
            0.5 * torch.rand(1, generator=g),
            0.3 * torch.rand(1, generator=g) ** 2,
        )
        phase = 2 * math.pi * f0 * t + 3 * torch.sin(2 * math.pi * 3 * t)
        out.append(level * torch.sin(phase) + noise * torch.randn(sample_rate, generator=g))
    return torch.stack(out)[:, None].clamp(-1, 1)


def coding_model(preset: str | dict[str, Any] = tiny_preset("tiny-encodec"), seed: int = 0) -> hificodec.CodecModel:
    """An eval-mode model built from `preset` whose codes vary with its input (see the module doc).

    Seeds itself and leaves the global random state as it was, so it is the same model whatever ran before.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = hificodec.build(preset)
        wav = calibration_audio(model.sample_rate, seed)
        with torch.no_grad():
            encoder = getattr(model, "encoder", None)
            if isinstance(encoder, SEANetEncoder):
                latent = model.latent(wav)
                mean, std = latent.mean((0, 2)), latent.std((0, 2))
                last = encoder.model[-1].conv  # SConv1d -> weight-normed Conv1d: scale each output channel
                last.parametrizations.weight.original0.div_(std.view(-1, 1, 1))
                if last.bias is not None:  # bias-free encoders (hificodec-16k) rely on the latent norm
                    last.bias.sub_(mean).div_(std)
            elif isinstance(encoder, MelEncoder):
                latent = model.latent(wav)
                mean, std = latent.mean((0, 2)), latent.std((0, 2))
                encoder.project.weight.div_(std.view(-1, 1, 1))
                encoder.project.bias.sub_(mean).div_(std)
            model.train()(wav)  # k-means fills the codebooks from these latents
    return model.eval()


def assert_codes_vary(codes: torch.Tensor | Any, min_distinct: int = 4) -> None:
    """Every codebook of codes [..., n_q, frames] uses at least `min_distinct` entries: a code-equality
    check on them means something."""
    codes = torch.as_tensor(codes)
    per_book = codes.transpose(0, -2).reshape(codes.shape[-2], -1) if codes.dim() > 2 else codes
    distinct = [len(torch.unique(row)) for row in per_book]
    assert min(distinct) >= min_distinct, f"codes are (nearly) constant: {distinct} distinct per codebook"


def code_mismatch(a: torch.Tensor | Any, b: torch.Tensor | Any) -> float:
    """Fraction of positions where two code arrays of the same shape differ."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a != b).double().mean())
