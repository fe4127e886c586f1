"""One unit of evaluation work — (file, system) -> a result row — runnable in a worker process.

Model outputs come in ready (models run once, in the main process); baselines are encoded and
decoded with ffmpeg inside the worker. Both are then delay-compensated, cropped and scored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import HificodecError
from .align import align_and_crop
from .baselines import BaselineSpec, run_baseline
from .metrics import METRICS, compute_metrics

ROW_FIELDS = [
    "file",
    "system",
    "kind",
    "duration_s",
    "sample_rate",
    "kbps",
    "coded_kbps",
    "delay_ms",
    "delay_confidence",
    *METRICS,
    "encode_s",
    "decode_s",
    "error",
]


@dataclass
class ScoreJob:
    file: str
    system: str
    kind: str  # "model" or "baseline"
    reference: np.ndarray  # mono, at `sample_rate` (the system's operating rate)
    sample_rate: int
    degraded_path: str | None = None  # model output (.npy); None for a baseline (made in the worker)
    bits: int | None = None
    coded_bits: int | None = None  # a model's codes entropy-coded as .hfc files store them
    encode_s: float | None = None
    decode_s: float | None = None
    baseline: BaselineSpec | None = None
    ffmpeg: str | None = None
    max_delay_ms: float = 100.0
    keep_audio: bool = False  # return the degraded audio (for spectrogram plots)


@dataclass
class ScoreResult:
    row: dict
    audio: np.ndarray | None = None


def init_worker() -> None:
    """Worker processes: one thread each (the pool is the parallelism)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def error_row(file: str, system: str, kind: str, message: str) -> dict:
    row = dict.fromkeys(ROW_FIELDS)
    row.update(file=file, system=system, kind=kind, error=message)
    return row


def score(job: ScoreJob) -> ScoreResult:
    duration = len(job.reference) / job.sample_rate
    row = error_row(job.file, job.system, job.kind, "")
    row.update(duration_s=round(duration, 4), sample_rate=job.sample_rate)
    degraded, bits = None, job.bits
    if job.baseline is not None:
        try:
            coded = run_baseline(job.reference, job.sample_rate, job.baseline, job.ffmpeg)
        except HificodecError as e:
            row["error"] = str(e)
            return ScoreResult(row)
        degraded, bits = coded.audio, coded.encoded_bytes * 8
        row.update(encode_s=coded.encode_seconds, decode_s=coded.decode_seconds)
    else:
        assert job.degraded_path is not None
        degraded = np.load(job.degraded_path)
        row.update(encode_s=job.encode_s, decode_s=job.decode_s)
    assert degraded is not None
    if bits is not None:
        row["kbps"] = bits / duration / 1000
    if job.coded_bits is not None:
        row["coded_kbps"] = job.coded_bits / duration / 1000
    if degraded.size == 0:
        row["error"] = "the system produced no audio"
        return ScoreResult(row)
    ref, deg, alignment = align_and_crop(job.reference, degraded, job.sample_rate, job.max_delay_ms)
    row.update(delay_ms=alignment.delay_ms, delay_confidence=round(alignment.confidence, 4))
    values, errors = compute_metrics(ref, deg, job.sample_rate)
    row.update(values)
    row["error"] = "; ".join(f"{k}: {v}" for k, v in errors.items())
    return ScoreResult(row, degraded if job.keep_audio else None)
