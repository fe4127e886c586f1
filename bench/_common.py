"""Helpers shared by the bench scripts: timing, the EnCodec reference, the BENCH_JSON result line."""

from __future__ import annotations

import json
import statistics
import sys
import time
import types
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_train_steps(
    trainer: Any, steps: int, between: Callable[[Any], None] | None = None
) -> tuple[float, list[float]]:
    """A trainer's first step (the warm-up: allocation, lazy initialisation) and then `steps` timed
    steps, batches drawn outside the timing; `between(batches)` runs untimed after the warm-up (e.g. a
    FLOP count). Returns (warm-up seconds, per-step seconds)."""
    batches = trainer._batches()
    t0 = time.perf_counter()
    trainer.train_step(next(batches))
    warmup = time.perf_counter() - t0
    if between is not None:
        between(batches)
    times = []
    for _ in range(steps):
        batch = next(batches)
        t0 = time.perf_counter()
        trainer.train_step(batch)
        times.append(time.perf_counter() - t0)
    return warmup, times


def encodec_reference():
    """Meta's EnCodec 24 kHz architecture with random weights (speed does not depend on weights).

    Installed with `pip install --no-deps encodec einops`; the package imports torchaudio at start-up
    although the model code does not use it, so an empty stand-in module satisfies the import.
    Returns None when the package is not installed.
    """
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    try:
        from encodec import EncodecModel
    except ImportError:
        return None
    model = EncodecModel.encodec_model_24khz(pretrained=False)
    model.set_target_bandwidth(6.0)
    return model.eval()


def emit(name: str, result: dict[str, Any]) -> None:
    """The last stdout line of every bench script: `BENCH_JSON {...}` (read by bench/run_all.py)."""
    print("BENCH_JSON " + json.dumps({"bench": name, **result}))
