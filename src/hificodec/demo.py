"""The main job of a fresh install: round-trip a real speech clip through the default codec and
report bitrate, quality (PESQ-WB, STOI against the original) and speed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from . import DEFAULT_MODEL
from .audio import load_audio, save_audio
from .checkpoint import build, list_models, load
from .models import CodecModel

BUNDLED_CLIP = "speech-cs-16k.flac"


def bundled_clip() -> Path:
    return Path(str(resources.files("hificodec") / "assets" / BUNDLED_CLIP))


@dataclass
class DemoResult:
    model: str
    trained: bool
    input_path: str
    seconds: float
    sample_rate: int
    kbps: float
    codes_shape: tuple[int, ...]
    encode_rtf: float  # seconds of audio per second of compute
    decode_rtf: float
    metrics: dict[str, float]
    metric_errors: dict[str, str]
    delay_ms: float
    output_path: str | None


def resolve_demo_model(name: str | None) -> tuple[CodecModel, bool]:
    """The named model, else the shipped default; falls back to the untrained default preset only
    when no trained model is installed (and says so through `trained=False`)."""
    if name is not None:
        return load(name), True
    if DEFAULT_MODEL in list_models():
        return load(DEFAULT_MODEL), True
    return build(DEFAULT_MODEL).eval(), False


def run_demo(
    model_name: str | None = None, input_path: str | None = None, output_path: str | None = None
) -> DemoResult:
    from .eval.align import align_and_crop
    from .eval.metrics import compute_metrics

    model, trained = resolve_demo_model(model_name)
    path = input_path or str(bundled_clip())
    audio, sr = load_audio(path, sample_rate=model.sample_rate, mono=True)
    wav = torch.from_numpy(audio).unsqueeze(0)
    with torch.inference_mode():
        t0 = time.perf_counter()
        codes = model.encode(wav)
        t1 = time.perf_counter()
        out = model.decode(codes, length=wav.shape[-1])
        t2 = time.perf_counter()
    seconds = wav.shape[-1] / sr
    rec = out[0, 0].numpy().astype(np.float32)
    ref, deg, alignment = align_and_crop(audio[0], rec, sr)
    metrics, errors = compute_metrics(ref, deg, sr, ["pesq_wb", "stoi", "mel_distance"])
    if output_path:
        save_audio(output_path, rec, sr)
    return DemoResult(
        model=model.release or model.name,
        trained=trained,
        input_path=path,
        seconds=seconds,
        sample_rate=sr,
        kbps=model.bitrate / 1000,
        codes_shape=tuple(codes.shape),
        encode_rtf=seconds / max(t1 - t0, 1e-9),
        decode_rtf=seconds / max(t2 - t1, 1e-9),
        metrics=metrics,
        metric_errors=errors,
        delay_ms=alignment.delay_ms,
        output_path=output_path,
    )
