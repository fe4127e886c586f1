"""`hificodec eval`: score models and classical codecs on a set of files (thin layer over hificodec.eval)."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import HificodecError
from .numbers import add_threads_arg, non_negative_float, non_negative_int, positive_int, positive_kbps


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate codecs (PESQ, STOI, SI-SDR, mel distance, F0 frame error, bitrate, speed) against baselines",
        description=(
            "Encode and decode every file with each model and baseline, compensate the delay, and score "
            "PESQ (wide-band at 16 kHz, narrow-band at 8 kHz), STOI/ESTOI, SI-SDR, multi-resolution mel "
            "distance, F0 frame error and the measured bitrate. Writes index.html (summary table, rate-quality "
            "plot, listening clips for A/B comparison), results.csv, summary.json, summary.md and plots."
        ),
    )
    p.add_argument("source", metavar="DATA", help="folder of audio files, .jsonl manifest, file list, or one file")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME|DIR",
        help="shipped model name or checkpoint directory (repeatable; default: the shipped model "
        "hificodec.DEFAULT_MODEL unless --preset or --no-model is given)",
    )
    p.add_argument(
        "--no-model", action="store_true", help="score no neural codec, only the --baselines (and the references)"
    )
    p.add_argument(
        "--preset",
        action="append",
        default=[],
        metavar="NAME",
        help="an UNTRAINED model built from a preset (smoke tests only; repeatable)",
    )
    p.add_argument(
        "--bandwidth",
        type=positive_kbps,
        nargs="+",
        default=[],
        metavar="KBPS",
        help="evaluate each model at these bitrates (default: the model's current one)",
    )
    p.add_argument(
        "--baselines",
        action="append",
        default=[],
        metavar="CODEC:V,V",
        help="classical codecs via ffmpeg: opus:6,8,12  amrwb:6.6,12.65  speex:q4  codec2:3200 (repeatable)",
    )
    p.add_argument("--out", default="eval-report", metavar="DIR", help="report folder (default: eval-report)")
    p.add_argument(
        "--workers",
        type=non_negative_int,
        default=min(4, os.cpu_count() or 1),
        help="metric worker processes (0: score in this process; default: min(4, CPUs))",
    )
    p.add_argument("--split", default=None, help="only manifest entries of this split (e.g. test)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="only the first N files")
    p.add_argument(
        "--spread", action="store_true", help="with --limit: take N files evenly spaced over the list, not the first N"
    )
    p.add_argument("--device", default="cpu", help="torch device for the models (default: cpu)")
    p.add_argument("--ffmpeg", default=None, metavar="PATH", help="ffmpeg binary (default: $HIFICODEC_FFMPEG or PATH)")
    p.add_argument(
        "--max-delay-ms", type=non_negative_float, default=100.0, help="delay search range (default: ±100 ms)"
    )
    p.add_argument(
        "--spectrograms", type=non_negative_int, default=3, metavar="N", help="spectrogram plots for the first N files"
    )
    p.add_argument(
        "--listen",
        type=non_negative_int,
        default=10,
        metavar="N",
        help="keep N files (spread over the set) as compressed clips for the page's listening section (default: 10)",
    )
    p.add_argument("--no-html", action="store_true", help="skip index.html (`hificodec report DIR` can build it later)")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib figures (and the clips' spectrograms)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_arg(p, "the models' (run in this process; the metric workers use one thread each)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import DEFAULT_MODEL
    from ..eval import EvalConfig, evaluate, write_report
    from ..eval.report import check_report_folder, summary_markdown

    check_report_folder(args.out, args.source)  # before the evaluation (minutes), not when writing
    models = list(args.model)
    if args.no_model and (models or args.preset):
        raise HificodecError("--no-model contradicts --model/--preset")
    if not (models or args.preset or args.no_model):
        # Baselines alone would silently leave out the codec under test.
        models = [DEFAULT_MODEL]
        note = f"no --model given: scoring the shipped model {DEFAULT_MODEL} (--no-model: baselines only)"
        print(f"hificodec eval: {note}", file=sys.stderr)
    config = EvalConfig(
        source=args.source,
        models=models,
        presets=args.preset,
        bandwidths=args.bandwidth,
        baselines=args.baselines,
        split=args.split,
        limit=args.limit,
        spread=args.spread,
        workers=args.workers,
        device=args.device,
        ffmpeg=args.ffmpeg,
        max_delay_ms=args.max_delay_ms,
        spectrogram_files=0 if args.no_plots else args.spectrograms,
        listen_files=args.listen,
        progress=not args.quiet,
    )
    report = evaluate(config)
    written = write_report(report, args.out, plots=not args.no_plots, html=not args.no_html, ffmpeg=args.ffmpeg)
    print(summary_markdown(report.summary))
    print(f"wrote {len(written)} files to {args.out}/", file=sys.stderr)
    if not args.no_html:
        print(f"report page: {os.path.join(args.out, 'index.html')}", file=sys.stderr)
    if report.unreadable:  # scored what it could, but the input had errors: say so in the exit status
        shown = ", ".join(report.unreadable[:3]) + (", ..." if len(report.unreadable) > 3 else "")
        print(f"hificodec eval: error: {len(report.unreadable)} of {report.summary.get('n_files', '?')} input files "
              f"could not be read ({shown}); their rows in results.csv say why", file=sys.stderr)
        return 1
    return 0
