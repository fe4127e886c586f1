"""`hificodec tokenize`: codec tokens for a whole dataset (thin over hificodec.tokenize)."""

from __future__ import annotations

import argparse
import os

from ..tokenize import tokenize
from .codec_cmd import add_backend_args, check_backend_args, load_model, with_backend
from .numbers import non_negative_int, positive_int, positive_kbps


def run(args: argparse.Namespace) -> int:
    check_backend_args(args)
    model = with_backend(load_model(args.model, args.bandwidth, args.n_q, args.device), args)
    workers = args.workers if args.workers is not None else len(os.sched_getaffinity(0))
    stats = tokenize(
        model, args.source, args.out, batch_size=args.batch_size, workers=workers, rank=args.rank,
        world_size=args.world_size, split=args.split, skip_errors=args.skip_errors, progress=not args.quiet,
        threads=args.threads,
    )  # fmt: skip
    if not args.quiet:
        hours = stats.audio_seconds / 3600
        print(
            f"tokenized {stats.encoded} of {stats.files} files into {args.out} ({stats.skipped} already done, "
            f"{len(stats.failed)} failed): {hours:.3f} h of audio in {stats.wall_seconds / 60:.2f} min "
            f"= {stats.hours_per_minute:.2f} hours of audio per minute ({60 * stats.hours_per_minute:.0f}x real time)"
        )
        for msg in stats.failed:
            print(f"  failed: {msg}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tokenize", help="write codec tokens (.npy per utterance + manifest) for a dataset",
        description="Encode every utterance of a folder, .jsonl manifest or file list to codes "
        "[codebooks, frames] (.npy, int16) under OUT/codes/, mirroring the input layout, plus "
        "OUT/manifest.jsonl (the input entries' fields, text included, plus codes and num_frames) and "
        "OUT/tokens.json (a model reference hificodec.load opens, rates, code layout). Audio is downmixed "
        "to mono and resampled to the model's rate. `hificodec decode OUT/codes/X.npy` plays codes back. "
        "Resumable (finished files are skipped) and shardable: under torchrun each rank "
        "(RANK/WORLD_SIZE) takes its share and writes manifest.rankR-of-W.jsonl.",
    )  # fmt: skip
    p.add_argument("source", metavar="DATA_DIR_OR_MANIFEST", help="folder, .jsonl manifest or .txt file list")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument("--model", help="shipped model name or checkpoint directory (default: hificodec.DEFAULT_MODEL)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--bandwidth", type=positive_kbps, metavar="KBPS", help="target bitrate")
    rate.add_argument("--n-q", type=positive_int, metavar="N", help="number of codebooks")
    p.add_argument("--batch-size", type=positive_int, default=16, help="utterances per model call (default 16)")
    p.add_argument(
        "--workers", type=non_negative_int,
        help="processes that load and encode, each with --threads threads (a GPU model, or --backend onnx: "
        "processes that load audio for the one encoder in this process); 0: everything in this process "
        "(default: one per CPU core)",
    )  # fmt: skip
    p.add_argument("--split", help="only entries of this split (manifests)")
    p.add_argument("--skip-errors", action="store_true", help="report unreadable files and go on")
    p.add_argument("--rank", type=non_negative_int, help="this shard (default: $RANK or 0)")
    p.add_argument("--world-size", type=positive_int, help="number of shards (default: $WORLD_SIZE or 1)")
    p.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_backend_args(p, what="each encoding process's", default="this machine's threads shared out among the "
                     "--workers, at least 1 each; torch's default when this process encodes")  # fmt: skip
    p.set_defaults(func=run)
