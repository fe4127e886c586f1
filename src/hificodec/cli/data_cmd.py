"""`hificodec data ...`: build the open corpus, write manifests for corpora on disk, pack training sets."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from ..errors import HificodecError, HificodecWarning, UsageError
from .numbers import non_negative_float, non_negative_int, number, positive_float, positive_int

#: --valid-share / --test-share (hificodec_tools.holdout.MAX_SHARE)
share = number(float, low=0, high=0.4)


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
        help="write train/valid/test manifests for a folder of audio (LibriTTS and VCTK layouts recognised)",
        description="Scan DIR for audio and write OUT_DIR/manifest.jsonl (every file, with its split) and "
        "train.jsonl, valid.jsonl, test.jsonl, held out by speaker. LibriTTS (train-clean-100/...) and VCTK "
        "(wav48*/pXXX/...) trees get speakers, transcripts (the `text` field) and their standard splits; a "
        "folder holding several trees gets each. A tree without standard valid or test speakers (e.g. only "
        "train-clean-100) has some of its train speakers held out (--valid-share, --test-share) or the ones "
        "named (--valid-speakers, --test-speakers). Audio files no tree takes are counted on stderr.",
    )
    m.add_argument("dir", metavar="DIR")
    m.add_argument("-o", "--out-dir", "--output", dest="output", default=None, metavar="OUT_DIR",
                   help="folder for the four manifests (default DIR)")
    m.add_argument("--layout", choices=("auto", "libritts", "vctk", "folder"), default="auto")
    m.add_argument("--valid-share", type=share, default=0.05, metavar="F",
                   help="for trees without standard valid speakers: hold out speakers with about this share of "
                   "the tree's audio (default 0.05; 0: none)")
    m.add_argument("--test-share", type=share, default=0.05, metavar="F",
                   help="the same for test (default 0.05)")
    m.add_argument("--valid-speakers", type=_names, action="extend", default=[], metavar="A,B",
                   help="speakers (e.g. libritts-19 or 19, p225) held out for valid, whatever their tree says")
    m.add_argument("--test-speakers", type=_names, action="extend", default=[], metavar="A,B",
                   help="speakers held out for test")
    m.add_argument("--seed", type=non_negative_int, default=0, help="which speakers a share picks (default 0)")
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


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _manifest(args: argparse.Namespace) -> int:
    # tooling, not the library
    from hificodec_tools.corpus.splits import SPLITS, write_split_manifests
    from hificodec_tools.holdout import HoldoutOptions, hold_out
    from hificodec_tools.layouts import folder_manifest

    out = Path(args.output) if args.output else Path(args.dir)
    if out.suffix == ".jsonl":
        raise UsageError("-o takes a folder: it receives manifest.jsonl, train.jsonl, valid.jsonl and test.jsonl")
    if out.exists() and not out.is_dir():
        raise HificodecError(f"{out}: exists and is not a folder")
    scan = folder_manifest(args.dir, layout=args.layout, progress=not args.no_progress)
    notes = hold_out(scan.trees, HoldoutOptions(
        valid_share=args.valid_share, test_share=args.test_share, valid_speakers=tuple(args.valid_speakers),
        test_speakers=tuple(args.test_speakers), seed=args.seed,
    ))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    paths = write_split_manifests(out, scan.entries)
    for line in scan.left_out:
        warnings.warn(f"left out {line}", HificodecWarning, stacklevel=1)
    for note in scan.notes + notes:
        print(f"note: {note}")
    hours = sum(e.duration or 0.0 for e in scan.entries) / 3600
    print(f"wrote {paths['manifest']}: {len(scan.entries)} files, {hours:.2f} h, layout {scan.layout}")
    for name in SPLITS:
        chosen = [e for e in scan.entries if e.split == name]
        speakers = len({e.speaker for e in chosen if e.speaker})
        texts = sum(e.text is not None for e in chosen)
        print(f"  {paths[name].name:<12} {len(chosen):>7} files {sum(e.duration or 0.0 for e in chosen) / 3600:8.2f} h "
              f"{speakers:>5} speakers {texts:>7} with text")
    return 0


def _pack(args: argparse.Namespace) -> int:
    from ..data.pack import pack_manifest

    result = pack_manifest(args.manifest, args.output, max_mib=args.max_mib, split=args.split, seed=args.seed,
                           real_only=args.real_only)
    print(result.describe())
    return 0
