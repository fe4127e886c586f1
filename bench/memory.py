"""Peak memory (RSS) of decoding a 1-hour .hfc file with the streaming, chunked decoder.

    python bench/memory.py [--preset hificodec-16k] [--hours 1.0] [--reference-minutes 5] [--threads 2]

Each measurement runs in a fresh subprocess and reports `resource.getrusage(RUSAGE_SELF).ru_maxrss`:
  baseline   - python + torch + the model loaded, nothing decoded
  streaming  - `hificodec.compress.decode_file` of the whole file to a .wav (one chunk in memory)
  whole      - reference: reading all codes and one `model.decode` call on the first N minutes
The codes are random (decoding cost and memory do not depend on their values); the model is the preset
with random weights saved to a temp dir, as `--model DIR` would load it. Goal: streaming peak < 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit

GIB = 1024**3


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child(mode: str, model_dir: str, hfc: str, out: str, minutes: float, threads: int) -> None:
    import torch

    import hificodec
    from hificodec.bitstream import HfcReader
    from hificodec.compress import decode_file

    torch.set_num_threads(threads)
    model = hificodec.load(model_dir)
    t0 = time.perf_counter()
    if mode == "streaming":
        decode_file(hfc, out, model=model, force=True)
    elif mode == "whole":
        with open(hfc, "rb") as f:
            codes = HfcReader(f).read_all()
        frames = int(minutes * 60 * model.frame_rate)
        with torch.inference_mode():
            model.decode(torch.from_numpy(codes[:, :, :frames]))
    print(json.dumps({"peak_rss": peak_rss_bytes(), "seconds": time.perf_counter() - t0}))


def measure(mode: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_random_hfc(model, path: Path, hours: float) -> int:
    from hificodec.bitstream import HfcWriter
    from hificodec.compress import make_header

    samples = int(hours * 3600 * model.sample_rate)
    header = make_header(model, 1, model.sample_rate, samples)
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        writer = HfcWriter(f, header)
        for start in range(0, header.num_frames, 10_000):
            n = min(10_000, header.num_frames - start)
            writer.write(rng.integers(0, header.codebook_size, size=(1, header.num_codebooks, n)))
        writer.close()
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="hificodec-16k")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--reference-minutes", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.child:
        model_dir, hfc, out, minutes, threads = rest
        child(args.child, model_dir, hfc, out, float(minutes), int(threads))
        return

    import hificodec

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        model = hificodec.build(args.preset).eval()
        model_dir = str(hificodec.save(model, Path(tmp) / "model"))
        hfc = Path(tmp) / "long.hfc"
        samples = write_random_hfc(model, hfc, args.hours)
        common = [model_dir, str(hfc), str(Path(tmp) / "out.wav"), str(args.reference_minutes), str(args.threads)]
        base = measure("baseline", *common)
        stream = measure("streaming", *common)
        whole = measure("whole", *common)
        wav_ok = os.path.getsize(Path(tmp) / "out.wav") >= samples * 2

    hours = args.hours
    print(f"preset {args.preset} (random weights), {hours:g} h .hfc = {hfc.name}, {args.threads} threads")
    print(f"  baseline (model loaded)          peak RSS {base['peak_rss'] / GIB:.3f} GiB")
    print(
        f"  streaming decode of {hours:g} h         peak RSS {stream['peak_rss'] / GIB:.3f} GiB "
        f"({stream['seconds']:.1f} s, {hours * 3600 / stream['seconds']:.0f}x real time), output complete: {wav_ok}"
    )
    print(
        f"  whole-array decode of {args.reference_minutes:g} min (ref) peak RSS {whole['peak_rss'] / GIB:.3f} GiB "
        f"({whole['seconds']:.1f} s)"
    )
    extra_stream = (stream["peak_rss"] - base["peak_rss"]) / 2**20
    extra_whole = (whole["peak_rss"] - base["peak_rss"]) / 2**20
    print(
        f"  memory above baseline: streaming {hours * 60:g} min {extra_stream:.0f} MiB vs whole-array "
        f"{args.reference_minutes:g} min {extra_whole:.0f} MiB (ratio {extra_stream / max(extra_whole, 1e-9):.2f}); "
        f"streaming peak under 1 GiB: {stream['peak_rss'] < GIB}"
    )
    emit(
        "memory",
        {
            "preset": args.preset, "hours": hours, "baseline_gib": round(base["peak_rss"] / GIB, 3),
            "streaming_peak_gib": round(stream["peak_rss"] / GIB, 3),
            "whole_ref_minutes": args.reference_minutes, "whole_ref_peak_gib": round(whole["peak_rss"] / GIB, 3),
            "streaming_under_1gib": stream["peak_rss"] < GIB, "streaming_seconds": round(stream["seconds"], 1),
            "output_complete": wav_ok,
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
