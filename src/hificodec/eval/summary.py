"""Per-system summary of evaluation rows (means over scored files, measured bitrate, speed, codes)."""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timezone
from typing import Any

from .. import __version__
from .baselines import BaselineSpec
from .metrics import METRICS
from .systems import ModelSystem

METRIC_DESCRIPTIONS = {
    "pesq_wb": "PESQ wide-band (P.862.2) MOS-LQO; audio resampled to 16 kHz with soxr",
    "pesq_nb": "PESQ narrow-band (P.862 + P.862.1) MOS-LQO; audio resampled to 8 kHz",
    "stoi": "STOI (pystoi) on 16 kHz audio",
    "estoi": "extended STOI (pystoi) on 16 kHz audio",
    "si_sdr": "scale-invariant SDR in dB at the system's rate",
    "mel_distance": "multi-resolution log-mel L1 (4 windows, 16-128 ms) at the system's rate; lower is better",
    "f0_frame_error": "F0 frame error (FFE): share of 10 ms frames with a voicing error or an f0 off by "
    "> 20 % (YIN on 16 kHz audio); lower is better",
}


def _finite(values: list[Any]) -> list[float]:
    return [
        float(v)
        for v in values
        if v is not None and not (isinstance(v, float) and math.isnan(v)) and math.isfinite(float(v))
    ]


def _stats(values: list[Any]) -> dict[str, float | int | None]:
    v = _finite(values)
    return {
        "mean": statistics.fmean(v) if v else None,
        "std": statistics.pstdev(v) if len(v) > 1 else (0.0 if v else None),
        "n": len(v),
    }


def summarise(
    rows: list[dict],
    order: list[str],
    systems: list[ModelSystem],
    baselines: list[BaselineSpec],
    notes: list[str],
    config: Any,
    n_files: int,
) -> dict:
    by_model = {s.name: s for s in systems}
    by_baseline = {b.name: b for b in baselines}
    out_systems = []
    for name in order:
        mine = [r for r in rows if r["system"] == name]
        scored = [r for r in mine if all(r.get(m) is not None for m in METRICS)]
        coded = [r for r in mine if r.get("kbps") is not None]
        seconds = sum(r["duration_s"] for r in coded)
        bits = sum(r["kbps"] * 1000 * r["duration_s"] for r in coded)
        # entropy-coded: models with tables (what their .hfc files cost); None where any file lacks it
        entropy_coded = [r for r in coded if r.get("coded_kbps") is not None]
        coded_bits = sum(r["coded_kbps"] * 1000 * r["duration_s"] for r in entropy_coded)
        enc = sum(r["encode_s"] or 0.0 for r in coded)
        dec = sum(r["decode_s"] or 0.0 for r in coded)
        entry: dict[str, Any] = {
            "system": name,
            "kind": "model" if name in by_model else "baseline",
            "n_files": len(mine),
            "n_fully_scored": len(scored),
            "n_with_errors": len(mine) - len(scored),
            "kbps": bits / seconds / 1000 if seconds else None,
            "coded_kbps": coded_bits / seconds / 1000 if seconds and len(entropy_coded) == len(coded) else None,
            "audio_seconds": seconds,
            "delay_ms_median": statistics.median(_finite([r["delay_ms"] for r in mine]) or [math.nan]),
            "metrics": {m: _stats([r.get(m) for r in mine]) for m in METRICS},
        }
        if name in by_model:
            entry.update(by_model[name].summary())
        else:
            b = by_baseline[name]
            entry.update(
                description=b.recipe.description,
                # ffmpeg process wall time (start-up included): a rough figure, not the codec's speed
                rtf=seconds / (enc + dec) if enc + dec > 0 else None,
                rtf_encode=seconds / enc if enc > 0 else None,
                rtf_decode=seconds / dec if dec > 0 else None,
            )
        if isinstance(entry["delay_ms_median"], float) and math.isnan(entry["delay_ms_median"]):
            entry["delay_ms_median"] = None
        out_systems.append(entry)
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hificodec_version": __version__,
        "source": str(config.source),
        "split": config.split,
        "limit": config.limit,
        "n_files": n_files,
        "metrics": METRIC_DESCRIPTIONS,
        "alignment": f"delay estimated per file by cross-correlation within ±{config.max_delay_ms:g} ms, "
        "then both signals cropped to equal length",
        "skipped": notes,
        "systems": out_systems,
    }
