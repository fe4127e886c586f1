"""`hificodec entropy fit`: fit a model's entropy tables on its tokens (a `hificodec tokenize` folder)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .numbers import positive_int

#: fitting on fewer frames than this (about 30 minutes at 50 Hz) earns a note: the classes need data
FEW_FRAMES = 90_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "entropy", help="entropy tables that code a model's codes in fewer bits (fit them on tokens)",
        description="Lossless entropy coding of .hfc payloads (docs/format.md). `fit` learns the context model "
        "from a `hificodec tokenize` output folder; put the tables next to the model's weights "
        "(entropy.safetensors) and `hificodec encode` uses them.",
    )  # fmt: skip
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    f = actions.add_parser("fit", help="fit tables on tokenized audio")
    f.add_argument("tokens", metavar="TOKENS_DIR", help="output folder of `hificodec tokenize` (its tokens.json "
                   "names the model the tables are for)")  # fmt: skip
    f.add_argument("-o", "--out", required=True, help="tables file to write (e.g. MODEL_DIR/entropy.safetensors)")
    f.add_argument("--force", action="store_true", help="overwrite an existing tables file (files coded with "
                   "the old tables then need the old file to decode)")
    f.add_argument("--previous-classes", type=positive_int, default=None, help="classes of the previous frame's code")
    f.add_argument("--parent-classes", type=positive_int, default=None, help="classes of the parent codebook's code")
    f.set_defaults(func=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    from ..compress import check_output_path
    from ..entropy import fit_from_tokens

    root = Path(args.tokens)
    # before the fit (minutes on hours of codes): an existing file, or one the fit reads, is refused
    check_output_path(args.out, [root / "tokens.json", *root.glob("manifest*.jsonl"), *(root / "codes").rglob("*.npy")],
                      args.force)  # fmt: skip
    options = {k: v for k, v in (("previous_classes", args.previous_classes),
                                 ("parent_classes", args.parent_classes)) if v is not None}  # fmt: skip
    start = time.monotonic()
    tables, frames = fit_from_tokens(args.tokens, **options)
    out = tables.save(Path(args.out))
    print(f"fitted in {time.monotonic() - start:.0f} s on {frames / 3600 / frame_rate(args.tokens):.2f} h of codes: "
          f"tables {tables.id} for model hash {tables.model_hash}, parents {tables.parent.tolist()}, "
          f"{out.stat().st_size / 2**20:.2f} MiB -> {out}")  # fmt: skip
    if frames < FEW_FRAMES:
        print(f"hificodec entropy: note: only {frames} frames to fit on; tables fitted on hours of audio code "
              "far better (the shipped ones: 2.3 h)", file=sys.stderr)
    return 0


def frame_rate(tokens: str) -> float:
    import json

    return float(json.loads((Path(tokens) / "tokens.json").read_text(encoding="utf-8")).get("frame_rate", 50.0))
