"""Evaluation: objective metrics (PESQ, STOI, SI-SDR, mel distance, F0 frame error), delay compensation, classical
baselines through ffmpeg, and reports.

    from hificodec.eval import EvalConfig, evaluate, write_report
    report = evaluate(EvalConfig("data/test.jsonl", models=["hificodec-16k"], baselines=["opus:6,8,12"]))
    write_report(report, "eval-report")

    from hificodec.eval.metrics import pesq_wb, stoi
    pesq_wb(ref, deg, 24000)   # resampled to 16 kHz with soxr first
"""

from .align import align_and_crop, estimate_delay
from .metrics import (
    MetricError,
    compute_metrics,
    estoi,
    f0_frame_error,
    mel_distance,
    pesq_nb,
    pesq_wb,
    si_sdr,
    stoi,
)
from .report import write_report
from .runner import EvalConfig, EvalReport, evaluate

__all__ = [
    "EvalConfig",
    "EvalReport",
    "MetricError",
    "align_and_crop",
    "compute_metrics",
    "estimate_delay",
    "estoi",
    "evaluate",
    "f0_frame_error",
    "mel_distance",
    "pesq_nb",
    "pesq_wb",
    "si_sdr",
    "stoi",
    "write_report",
]
