"""Tokenization throughput: hours of audio tokenized per minute on CPU (2 threads by default).

    python bench/tokenize_speed.py [--preset hificodec-16k] [--files 120] [--threads 2] [--workers 1]

A synthetic dataset (noise-like clips of 2-10 s, 16 kHz and 44.1 kHz mixed, nested folders) is written to
a temp dir. The reference, measured in the same run, is the plain loop a user would write
(`load_audio` + `model.encode` per file + `np.save`), timed before and after the others. Then
`hificodec.tokenize` with batch sizes 1 and 16 (audio loading in a worker process). Speed does not
depend on the weights, so the preset has random weights.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from _common import emit

import hificodec
from hificodec.audio import load_audio
from hificodec.data.manifest import scan_audio
from hificodec.tokenize import tokenize


def make_dataset(root: Path, files: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    seconds = 0.0
    for i in range(files):
        sr = 44100 if i % 4 == 0 else 16000
        dur = float(rng.uniform(2.0, 10.0))
        t = np.arange(int(dur * sr)) / sr
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(t.shape)
        folder = root / f"spk{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(str(folder / f"utt{i:04d}.flac"), x.astype(np.float32), sr)
        seconds += len(t) / sr
    return seconds


def naive_loop(model, root: Path, out: Path) -> float:
    t0 = time.perf_counter()
    out.mkdir()
    for i, path in enumerate(scan_audio(root)):
        audio, _ = load_audio(path, sample_rate=model.sample_rate, mono=True)
        with torch.inference_mode():
            codes = model.encode(torch.from_numpy(audio)[None])[0].numpy().astype(np.int16)
        np.save(out / f"{i}.npy", codes)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="hificodec-16k")
    ap.add_argument("--files", type=int, default=120)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = hificodec.build(args.preset).eval()

    with tempfile.TemporaryDirectory(prefix="bench-tokenize-") as tmp:
        root = Path(tmp) / "data"
        audio_seconds = make_dataset(root, args.files)
        hours = audio_seconds / 3600
        with torch.inference_mode():  # warm-up (and the one-off model hash) outside the timings
            model.encode(torch.zeros(1, 1, model.sample_rate))
        hificodec.weights_hash(model)
        ref_first = naive_loop(model, root, Path(tmp) / "naive1")
        runs = {}
        for batch in (1, 16):
            stats = tokenize(model, root, Path(tmp) / f"tok{batch}", batch_size=batch, workers=args.workers)
            runs[batch] = stats
        # the reference runs before and after, so a change in machine load affects both sides alike
        ref_s = (ref_first + naive_loop(model, root, Path(tmp) / "naive2")) / 2
        t0 = time.perf_counter()
        rerun = tokenize(model, root, Path(tmp) / "tok16", batch_size=16, workers=args.workers)
        resume_s = time.perf_counter() - t0

    ref_hpm = hours / (ref_s / 60)
    print(f"{args.files} files, {audio_seconds / 60:.1f} min of audio, preset {args.preset}, {args.threads} threads")
    print(f"  reference loop (load + encode + save)   {ref_hpm:.3f} h/min ({ref_s:.1f} s)")
    for batch, s in runs.items():
        print(
            f"  hificodec.tokenize batch {batch:<2d} workers {args.workers}  {s.hours_per_minute:.3f} h/min "
            f"({s.wall_seconds:.1f} s, {s.batches} batches, x{s.hours_per_minute / ref_hpm:.2f} vs reference)"
        )
    print(f"  rerun with everything done: {rerun.skipped} skipped in {resume_s:.2f} s")
    best = max(runs, key=lambda b: runs[b].hours_per_minute)
    emit(
        "tokenize_speed",
        {
            "preset": args.preset, "threads": args.threads, "audio_minutes": round(audio_seconds / 60, 2),
            "reference_hours_per_minute": round(ref_hpm, 4),
            **{f"batch{b}_hours_per_minute": round(s.hours_per_minute, 4) for b, s in runs.items()},
            "best_batch": best, "speedup_vs_reference": round(runs[best].hours_per_minute / ref_hpm, 3),
            "resume_skip_seconds": round(resume_s, 2),
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
