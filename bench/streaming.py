"""Streaming compute per 20 ms frame on ONE thread: the bundled clip pushed frame by frame through the
streaming encoder and decoder (models.streaming), for hificodec-16k-mel (the default), hificodec-16k
and its causal preset.

    python bench/streaming.py [--presets hificodec-16k-mel,hificodec-16k,hificodec-16k-causal] [--frames-per-push 1]

Reports per push: encode and decode compute time (mean, 99th percentile), the real-time factor
(audio seconds per compute second, encode + decode), and the algorithmic latency. The causal preset is
built with random weights (speed does not depend on weights); the shipped model is loaded when installed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from _common import emit

import hificodec
from hificodec.audio import load_audio
from hificodec.demo import bundled_clip


def _model(name: str) -> hificodec.CodecModel:
    try:
        return hificodec.load(name)
    except hificodec.CheckpointError:
        return hificodec.build(name).eval()


def _p99(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, math.ceil(0.99 * len(values)) - 1)]


def run(model: hificodec.CodecModel, wav: torch.Tensor, frames_per_push: int, warmup: int = 25) -> dict:
    step = model.hop_length * frames_per_push
    enc, dec = model.streaming_encoder(), model.streaming_decoder()
    t_enc: list[float] = []
    t_dec: list[float] = []
    for i in range(0, wav.shape[-1] - step + 1, step):
        t0 = time.perf_counter()
        codes = enc.push(wav[..., i : i + step])
        t1 = time.perf_counter()
        dec.push(codes)
        t2 = time.perf_counter()
        t_enc.append(1000 * (t1 - t0))
        t_dec.append(1000 * (t2 - t1))
    t_enc, t_dec = t_enc[warmup:], t_dec[warmup:]
    push_ms = 1000 * step / model.sample_rate
    lat = model.algorithmic_latency()
    return {
        "push_ms": push_ms,
        "encode_mean_ms": round(statistics.mean(t_enc), 3),
        "encode_p99_ms": round(_p99(t_enc), 3),
        "decode_mean_ms": round(statistics.mean(t_dec), 3),
        "decode_p99_ms": round(_p99(t_dec), 3),
        "rtf": round(push_ms / (statistics.mean(t_enc) + statistics.mean(t_dec)), 2),
        "latency_ms": lat.total_ms,
        "encoder_lookahead_ms": lat.encoder_lookahead_ms,
        "decoder_lookahead_ms": lat.decoder_lookahead_ms,
        "pushes": len(t_enc),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="hificodec-16k-mel,hificodec-16k,hificodec-16k-causal")
    ap.add_argument("--frames-per-push", type=int, default=1, help="code frames per push (1 = 20 ms)")
    ap.add_argument("--repeat", type=int, default=2, help="times through the clip (after a warm-up)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = {}
    for name in args.presets.split(","):
        if name not in hificodec.list_presets() and name not in hificodec.list_models():
            print(f"note: no preset {name} in this version: skipped")
            continue
        model = _model(name)
        audio, _ = load_audio(bundled_clip(), model.sample_rate, mono=True)
        wav = torch.from_numpy(audio).reshape(1, 1, -1).repeat(1, 1, args.repeat)
        with torch.inference_mode():
            rows[name] = run(model, wav, args.frames_per_push)
    print(f"\nstreaming on 1 thread, {args.frames_per_push} frame(s) per push, the bundled clip x {args.repeat}")
    print(f"{'model':24s} {'enc mean':>9s} {'enc p99':>8s} {'dec mean':>9s} {'dec p99':>8s} {'RTF':>6s} "
          f"{'latency':>9s} (enc + dec lookahead)")  # fmt: skip
    for name, r in rows.items():
        print(f"{name:24s} {r['encode_mean_ms']:7.2f}ms {r['encode_p99_ms']:6.2f}ms {r['decode_mean_ms']:7.2f}ms "
              f"{r['decode_p99_ms']:6.2f}ms {r['rtf']:6.2f} {r['latency_ms']:7.1f}ms "
              f"({r['encoder_lookahead_ms']:g} + {r['decoder_lookahead_ms']:g} ms)")  # fmt: skip
    emit("streaming", {"threads": 1, "frames_per_push": args.frames_per_push, "rows": rows})


if __name__ == "__main__":
    main()
