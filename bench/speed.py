"""Inference speed side by side: a shipped model (the default unless `--model`), onnxruntime, and
EnCodec 24 kHz, for encode, decode and dataset tokenization, at 1 and 2 threads, in one run; for
hificodec-16k also before/after the fast CPU path.

    python bench/speed.py [--model NAME] [--seconds 10] [--threads 1,2] [--before 39d52f1] [--files 48] [--presets]

- encode / decode: real-time factor (seconds of audio per second of wall time, higher is faster) of a
  `--seconds` clip, batch 1, torch.inference_mode, median of 3 runs; enc+dec is the factor of the two
  in sequence (a reconstruction), and `x EnC` its ratio to EnCodec's in the same run.
- tokenize: `hificodec.tokenize` over a synthetic dataset (`--files` clips of 2-10 s, 16 and 44.1 kHz,
  as bench/tokenize_speed.py makes them), in hours of audio per minute; with N threads the fast path
  runs N one-thread encoding processes, `before` runs its own default (one process, N threads, a
  loading worker), onnxruntime one process with N intra-op threads.
- before: the same measurements on the source tree of git revision `--before` (default: the last
  revision without the fast path), run from a `git archive` of it in a subprocess; skipped with a note
  when git or the revision is not available, and for models that revision did not have.
- EnCodec: Meta's 24 kHz architecture with random weights (speed does not depend on weights), 6 kbps;
  `pip install --no-deps encodec einops`. Its tokenize figure is a plain encode loop.
`--presets` adds the real-time factors of every shipped preset (random weights) at the first thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import emit, encodec_reference, median_time
from tokenize_speed import make_dataset

import hificodec

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
#: the last revision before the fast CPU path (channels-last encoder, encoding processes)
BEFORE = "39d52f1"
#: the model the 'before' rows measure (the only one that revision shipped)
BEFORE_MODEL = "hificodec-16k"


def test_clip(seconds: float, sample_rate: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    return (0.3 * torch.sin(2 * torch.pi * 150 * t) + 0.05 * torch.randn(t.shape, generator=g))[None, None]


def codec_rtf(encode, decode, seconds: float, sample_rate: int) -> dict[str, float]:
    wav = test_clip(seconds, sample_rate)
    with torch.inference_mode():
        codes = encode(wav)
        t_enc = median_time(lambda: encode(wav))
        t_dec = median_time(lambda: decode(codes))
    return {"encode": seconds / t_enc, "decode": seconds / t_dec, "enc+dec": seconds / (t_enc + t_dec)}


def tokenize_rate(model, data: Path, out: Path, hours: float, **kwargs: Any) -> float:
    from hificodec.tokenize import tokenize

    t0 = time.perf_counter()
    tokenize(model, data, out, **kwargs)
    return hours / ((time.perf_counter() - t0) / 60)


# Run in a subprocess on the `before` tree: the same clip and dataset, its own defaults.
_BEFORE_SCRIPT = r"""
import json, sys, time, torch
sys.path.insert(0, sys.argv[1])
import hificodec
from hificodec.tokenize import tokenize
from speed import codec_rtf
threads, seconds, data, out, hours = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6])
torch.set_num_threads(threads)
model = hificodec.load("hificodec-16k")
row = codec_rtf(model.encode, model.decode, seconds, model.sample_rate)
t0 = time.perf_counter()
tokenize(model, data, out, batch_size=16, workers=1)
row["tokenize"] = hours / ((time.perf_counter() - t0) / 60)
print("ROW " + json.dumps(row))
"""


def before_tree(revision: str, tmp: Path) -> Path | None:
    """The `src` folder of `revision`, unpacked under tmp (None, with a note, where git cannot give it)."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", revision, "src"], check=True, capture_output=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"note: no 'before' rows: git archive {revision} failed ({e})")
        return None
    (tmp / "archive.tar").write_bytes(archive)
    with tarfile.open(tmp / "archive.tar") as tar:
        tar.extractall(tmp / "before", filter="data")
    return tmp / "before" / "src"


def run_before(src: Path, threads: int, seconds: float, data: Path, out: Path, hours: float) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{BENCH}"}
    proc = subprocess.run(
        [sys.executable, "-c", _BEFORE_SCRIPT, str(src), str(threads), str(seconds), str(data), str(out), str(hours)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    rows = [line[4:] for line in proc.stdout.splitlines() if line.startswith("ROW ")]
    if proc.returncode or not rows:
        raise RuntimeError(f"the 'before' run failed: {proc.stderr[-2000:]}")
    return json.loads(rows[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=hificodec.DEFAULT_MODEL, help="installed model name or folder")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--before", default=BEFORE, help="git revision for the 'before' rows ('' to skip them)")
    ap.add_argument("--files", type=int, default=48, help="clips in the tokenize dataset")
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--presets", action="store_true", help="also every shipped preset, random weights")
    args = ap.parse_args()
    thread_counts = [int(n) for n in args.threads.split(",")]

    model = hificodec.load(args.model)
    if args.before and args.model != BEFORE_MODEL:
        print(f"note: no 'before' rows: revision {args.before} predates {args.model} (they measure {BEFORE_MODEL})")
        args.before = ""
    ref = encodec_reference()
    if ref is None:
        print("note: `encodec` is not installed (pip install --no-deps encodec einops): no reference rows")
    onnx = None
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp_name:
        tmp = Path(tmp_name)
        hours = make_dataset(tmp / "data", args.files) / 3600
        before_src = before_tree(args.before, tmp) if args.before else None
        if not args.no_onnx:
            try:
                from hificodec import onnx_backend

                onnx_backend.export(model, tmp / "graphs")
                onnx = onnx_backend
            except Exception as e:  # an optional extra: report and go on
                print(f"note: no onnxruntime rows ({e})")
        run = 0
        for threads in thread_counts:
            torch.set_num_threads(threads)
            rows: dict[str, dict[str, float]] = {}
            if before_src is not None:
                run += 1
                rows["torch, before"] = run_before(before_src, threads, args.seconds, tmp / "data",
                                                   tmp / f"tok{run}", hours)  # fmt: skip
            run += 1
            rows["torch, fast path"] = codec_rtf(model.encode, model.decode, args.seconds, model.sample_rate)
            rows["torch, fast path"]["tokenize"] = tokenize_rate(
                model, tmp / "data", tmp / f"tok{run}", hours, batch_size=16, workers=threads, threads=1
            )
            if onnx is not None:
                run += 1
                backend = onnx.load(model, tmp / "graphs", threads=threads)
                rows["onnxruntime"] = codec_rtf(backend.encode, backend.decode, args.seconds, model.sample_rate)
                rows["onnxruntime"]["tokenize"] = tokenize_rate(
                    backend, tmp / "data", tmp / f"tok{run}", hours, batch_size=16, workers=0
                )
            if ref is not None:
                rows["EnCodec 24 kHz 6 kbps [reference]"] = encodec_row(ref, args.seconds, tmp / "data", hours)
            results[f"{threads} thread(s)"] = rows

    print(f"\n{args.model} (2 kbps) vs EnCodec 24 kHz, {args.seconds:g} s clip, batch 1; tokenize: "
          f"{hours * 60:.1f} min of audio in {args.files} files")  # fmt: skip
    columns = ("encode", "decode", "enc+dec", "x EnC", "tok h/min")
    print(f"{'threads':>7s}  {'system':36s} " + " ".join(f"{c:>{max(7, len(c))}s}" for c in columns))
    for label, rows in results.items():
        ref_row = rows.get("EnCodec 24 kHz 6 kbps [reference]")
        for name, row in rows.items():
            ratio = f"{row['enc+dec'] / ref_row['enc+dec']:7.2f}" if ref_row else f"{'-':>7s}"
            print(f"{label.split()[0]:>7s}  {name:36s} {row['encode']:7.1f} {row['decode']:7.1f} "
                  f"{row['enc+dec']:7.1f} {ratio} {row['tokenize']:9.2f}")  # fmt: skip
            if ref_row:
                row["enc+dec_vs_encodec"] = row["enc+dec"] / ref_row["enc+dec"]
    if args.presets:
        results["presets"] = preset_rows(thread_counts[0], args.seconds)
    emit("speed", {"model": args.model, "seconds": args.seconds, "before": args.before, "rows": _rounded(results)})


def encodec_row(ref, seconds: float, data: Path, hours: float) -> dict[str, float]:
    """EnCodec's codec factors, and its tokenize figure as a plain loop (load, encode, save)."""
    from hificodec.audio import load_audio
    from hificodec.data.manifest import scan_audio

    row = codec_rtf(ref.encode, ref.decode, seconds, 24000)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out, torch.inference_mode():
        for i, path in enumerate(scan_audio(data)):
            audio, _ = load_audio(path, sample_rate=24000, mono=True)
            frames = ref.encode(torch.from_numpy(audio)[None])
            np.save(Path(out) / f"{i}.npy", frames[0][0].numpy().astype(np.int16))
    row["tokenize"] = hours / ((time.perf_counter() - t0) / 60)
    return row


def preset_rows(threads: int, seconds: float) -> dict[str, dict[str, float]]:
    torch.set_num_threads(threads)
    rows = {}
    for name in hificodec.list_presets():
        m = hificodec.build(name).eval()
        rows[name] = codec_rtf(m.encode, m.decode, seconds, m.sample_rate)
        print(f"  preset {name}: encode {rows[name]['encode']:.1f}, decode {rows[name]['decode']:.1f}")
    return rows


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 3) if isinstance(value, float) else value


if __name__ == "__main__":
    main()
