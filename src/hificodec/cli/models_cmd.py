"""`hificodec models` (what is installed) and `hificodec demo` (the main job of a fresh install)."""

from __future__ import annotations

import argparse

from .. import DEFAULT_MODEL
from ..checkpoint import build, list_models, load
from ..config import list_presets
from ..releases import Release, read_index, split_id
from .numbers import add_threads_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models", help="list shipped trained models, every release with its scores (and, with --presets, architectures)"
    )
    p.add_argument("--presets", action="store_true", help="also list the untrained presets `build` accepts")
    p.set_defaults(func=run_models)

    d = sub.add_parser("demo", help="round-trip a bundled real speech clip through the default codec and score it")
    d.add_argument("--model", default=None, help=f"shipped model name or checkpoint dir (default: {DEFAULT_MODEL})")
    d.add_argument("--input", default=None, help="audio file to use instead of the bundled clip")
    d.add_argument("-o", "--output", default="hificodec-demo.wav", help="where to write the reconstruction")
    add_threads_arg(d)
    d.set_defaults(func=run_demo_cmd)


def _describe(model) -> list[str]:
    """A model's architecture as table cells: family, rate, hop, frame rate, codebooks, bitrates."""
    bw = model.bandwidths
    kbps = ", ".join(f"{b:g}" for b in bw) if len(bw) <= 6 else f"{bw[0]:g} to {bw[-1]:g} in steps of {bw[0]:g}"
    return [
        model.family, f"{model.sample_rate / 1000:g} kHz", f"hop {model.hop_length}", f"{model.frame_rate:g} Hz",
        f"{model.max_codebooks} x {model.codebook_size}", f"kbps: {kbps}",
    ]  # fmt: skip


def _scores(release: Release) -> str:
    test = release.scores.get("test", {})
    cells = [f"{test[k]:g}" if k in test else "-" for k in ("pesq_wb", "stoi", "mel_distance", "ffe")]
    return " / ".join(cells)


def table(rows: list[list[str]], indent: str = "  ", gap: str = "  ") -> list[str]:
    """Rows of cells as lines whose columns line up: each column as wide as its widest cell (the
    widths come from the cells, so a longer name or score never pushes one row out of line)."""
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows), default=0))]
    return [indent + gap.join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def run_models(args: argparse.Namespace) -> int:
    shipped = list_models()
    print("Trained models (hificodec.load(NAME), --model NAME; NAME@N names release N):")
    if not shipped:
        print("  none installed")
    installed: dict[str, int] = {}
    rows = []
    for name in shipped:
        model = load(name)
        if model.release is not None:
            installed[name] = split_id(model.release)[1] or 0
        rows.append([model.release or name, *_describe(model), "[default]" if name == DEFAULT_MODEL else ""])
    if rows:
        print("\n".join(table(rows)))
    index = read_index()
    if index:
        print("\nReleases (newest first; test split PESQ-WB / STOI / mel distance / FFE):")
        rows = [
            [r.id, r.date, "installed" if installed.get(name) == r.number else "-", _scores(r), r.summary]
            for name, releases in index.items()
            for r in reversed(releases)
        ]
        print("\n".join(table(rows)))
    if args.presets:
        print("\nPresets (untrained architectures; hificodec.build(NAME), training recipes):")
        print("\n".join(table([[name, *_describe(build(name))] for name in list_presets()])))
    return 0


def run_demo_cmd(args: argparse.Namespace) -> int:
    from ..compress import check_not_input
    from ..demo import run_demo

    if args.output and args.input:
        check_not_input(args.output, [args.input])
    r = run_demo(args.model, args.input, args.output)
    if not r.trained:
        print(
            f"NOTE: no trained model is installed, so this ran the untrained '{r.model}' architecture "
            "(random weights): the numbers below show the pipeline working, not codec quality."
        )
    print(f"input       {r.input_path} ({r.seconds:.2f} s at {r.sample_rate} Hz)")
    print(f"model       {r.model}{'' if r.trained else ' (untrained)'}")
    print(f"codes       {r.codes_shape[1]} codebooks x {r.codes_shape[2]} frames -> {r.kbps:g} kbps")
    print(f"speed       encode {r.encode_rtf:.1f}x real time, decode {r.decode_rtf:.1f}x real time (CPU)")
    for name, label in (("pesq_wb", "PESQ-WB"), ("stoi", "STOI"), ("mel_distance", "mel dist")):
        if name in r.metrics:
            print(f"{label:11s} {r.metrics[name]:.3f}")
        else:
            print(f"{label:11s} n/a ({r.metric_errors.get(name, 'not computed')})")
    print(f"delay       {r.delay_ms:.1f} ms (compensated before scoring)")
    if r.output_path:
        print(f"wrote       {r.output_path}")
    return 0
