"""`hificodec data ...`: build the open corpus, write manifests for corpora on disk, pack training sets."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .numbers import non_negative_float, non_negative_int, positive_float, positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="build the open speech corpus, write manifests, pack subsets")
    sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    b = sub.add_parser(
        "build-corpus",
        help="build the open speech corpus from Debian packages (real speech, optional MBROLA speech)",
        description="Download the allowlisted Debian packages with recorded speech (apt-get download), "
        "convert their speech to mono FLAC, deduplicate, split speaker-disjointly and write manifests. "
        "Rerunning resumes and skips finished work.",
    )
    b.add_argument("out_dir", metavar="OUT_DIR")
    b.add_argument("--sample-rate", type=int, default=16000, choices=(16000, 24000))
    b.add_argument("--synthetic-hours", type=non_negative_float, default=0.0, metavar="H",
                   help="add H hours of MBROLA speech via espeak-ng (needs contrib/non-free apt sources)")
    b.add_argument("--jobs", type=positive_int, default=1, metavar="N", help="conversion processes (default 1)")
    b.add_argument(
        "--min-seconds", type=non_negative_float, default=0.5, help="drop clips shorter than this (default 0.5)"
    )
    b.add_argument("--test-minutes", type=non_negative_float, default=25.0, help="real speech held out for test")
    b.add_argument("--valid-minutes", type=non_negative_float, default=10.0, help="real speech held out for valid")
    b.add_argument("--seed", type=non_negative_int, default=0)
    b.add_argument("--work-dir", default=None, help="where .deb files are downloaded and unpacked "
                   "(default OUT_DIR/_work)")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=_build_corpus)

    m = sub.add_parser(
        "manifest",
        help="write a manifest for a folder of audio (LibriTTS and VCTK layouts recognised)",
        description="Scan DIR for audio and write a JSONL manifest. LibriTTS (train-clean-100/...) and "
        "VCTK (wav48*/pXXX/...) layouts get speakers and their standard splits.",
    )
    m.add_argument("dir", metavar="DIR")
    m.add_argument("-o", "--output", default=None, metavar="OUT.jsonl",
                   help="output manifest (default DIR/manifest.jsonl)")
    m.add_argument("--layout", choices=("auto", "libritts", "vctk", "folder"), default="auto")
    m.add_argument("--no-progress", action="store_true")
    m.set_defaults(func=_manifest)

    k = sub.add_parser(
        "pack",
        help="pack a balanced subset of a manifest into one tar (FLAC + manifest) for offline training",
    )
    k.add_argument("manifest", metavar="MANIFEST")
    k.add_argument("output", metavar="OUT.tar")
    k.add_argument("--max-mib", type=positive_float, default=48.0, help="size limit of the tar in MiB (default 48)")
    k.add_argument("--split", default=None, help="only entries of this split")
    k.add_argument("--seed", type=non_negative_int, default=0)
    k.add_argument("--real-only", action="store_true", help="leave out synthetic (TTS) speech")
    k.set_defaults(func=_pack)


def _build_corpus(args: argparse.Namespace) -> int:
    from hificodec_tools.corpus import CorpusOptions, build_corpus  # tooling, not the library

    start = time.monotonic()
    result = build_corpus(CorpusOptions(
        out_dir=args.out_dir, sample_rate=args.sample_rate, synthetic_hours=args.synthetic_hours,
        jobs=args.jobs, min_seconds=args.min_seconds, test_minutes=args.test_minutes,
        valid_minutes=args.valid_minutes, seed=args.seed, work_dir=args.work_dir,
        progress=not args.no_progress,
    ))
    print(result.summary)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {Path(args.out_dir) / 'manifest.jsonl'} ({time.monotonic() - start:.0f} s)")
    return 0


def _manifest(args: argparse.Namespace) -> int:
    from hificodec_tools.layouts import write_folder_manifest  # tooling, not the library

    out = Path(args.output) if args.output else Path(args.dir) / "manifest.jsonl"
    entries, layout = write_folder_manifest(args.dir, out, layout=args.layout, progress=not args.no_progress)
    hours = sum(e.duration or 0.0 for e in entries) / 3600
    print(f"wrote {out}: {len(entries)} files, {hours:.2f} h, layout {layout}")
    return 0


def _pack(args: argparse.Namespace) -> int:
    from ..data.pack import pack_manifest

    result = pack_manifest(args.manifest, args.output, max_mib=args.max_mib, split=args.split, seed=args.seed,
                           real_only=args.real_only)
    print(result.describe())
    return 0
