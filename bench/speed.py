"""Encode/decode real-time factors of every preset on CPU, next to EnCodec 24 kHz measured in the same run.

    python bench/speed.py [--seconds 10] [--threads 2] [--presets a,b,...]

Real-time factor = seconds of audio per second of wall time (higher is faster), batch 1,
torch.inference_mode, median of 3 runs. Ratios are against EnCodec's 24 kHz architecture
(`pip install --no-deps encodec einops`), measured on the same machine in the same run.
"""

from __future__ import annotations

import argparse

import torch
from _common import emit, encodec_reference, median_time

import hificodec


def rtf_pair(encode, decode, seconds: float, sample_rate: int) -> tuple[float, float]:
    wav = torch.randn(1, 1, int(seconds * sample_rate)) * 0.1
    with torch.inference_mode():
        codes = encode(wav)
        t_enc = median_time(lambda: encode(wav))
        t_dec = median_time(lambda: decode(codes))
    return seconds / t_enc, seconds / t_dec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--presets", default=None, help="comma-separated (default: every shipped preset)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.presets.split(",") if args.presets else hificodec.list_presets()

    rows = []
    ref = encodec_reference()
    ref_enc = ref_dec = None
    if ref is not None:
        ref_enc, ref_dec = rtf_pair(ref.encode, ref.decode, args.seconds, 24000)
        rows.append(("encodec (Meta) 24 kHz, 6 kbps [reference]", 14.9, ref_enc, ref_dec))
    else:
        print("note: `encodec` is not installed (pip install --no-deps encodec einops): no reference ratios")
    for name in names:
        model = hificodec.build(name).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        enc, dec = rtf_pair(model.encode, model.decode, args.seconds, model.sample_rate)
        rows.append((f"{name} ({model.bitrate / 1000:g} kbps)", params, enc, dec))

    print(f"\nCPU real-time factors, {args.seconds:g} s of audio, batch 1, {args.threads} thread(s)")
    print(f"{'model':44s} {'params':>7s} {'enc RTF':>8s} {'dec RTF':>8s} {'enc/EnC':>8s} {'dec/EnC':>8s}")
    result = {}
    for label, params, enc, dec in rows:
        r_enc = f"{enc / ref_enc:8.2f}" if ref_enc else f"{'-':>8s}"
        r_dec = f"{dec / ref_dec:8.2f}" if ref_dec else f"{'-':>8s}"
        print(f"{label:44s} {params:6.1f}M {enc:8.1f} {dec:8.1f} {r_enc} {r_dec}")
        result[label] = {"params_m": round(params, 2), "encode_rtf": round(enc, 2), "decode_rtf": round(dec, 2)}
    emit("speed", {"threads": args.threads, "seconds": args.seconds, "rows": result})


if __name__ == "__main__":
    main()
