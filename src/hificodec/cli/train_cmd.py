"""`hificodec train` and `hificodec export`: thin layers over hificodec.train.

    hificodec train RECIPE.yaml --data DIR_OR_MANIFEST [--valid ...] [--out RUN_DIR] [--resume] [key=value ...]
    torchrun --nproc_per_node=N -m hificodec train ...      # DDP: gloo on CPU, NCCL on GPU
    hificodec export RUN_DIR OUT_DIR [--checkpoint best|last|step-00001000] [--live-weights]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..errors import HificodecError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a codec from a recipe",
        description="Train a codec (HiFi-Codec, Encodec, SoundStream) from a recipe. Run under torchrun for DDP.",
    )
    p.add_argument("recipe", help="recipe YAML (see recipes/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. train.max_steps=100")
    _collect_overrides_anywhere(p)
    p.add_argument("--data", required=True, help="training audio: folder, file list or .jsonl manifest")
    p.add_argument("--valid", help="validation audio (default: the manifest's split=valid entries, if any)")
    p.add_argument("--out", default=None, help="run directory (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "export", help="export a training run's generator (and discriminator) for use or fine-tuning",
        description="Write the generator in the shipped-model format and the discriminator under "
        "OUT_DIR/discriminator.",
    )
    e.add_argument("run_dir")
    e.add_argument("out_dir")
    e.add_argument("--checkpoint", default="best", help="best (default), last, or a checkpoint folder name")
    e.add_argument("--live-weights", action="store_true",
                   help="export the trained weights, not their moving average (runs with train.ema_decay)")
    e.set_defaults(func=run_export)


def _collect_overrides_anywhere(parser: argparse.ArgumentParser) -> None:
    """Let `key=value` overrides follow options too (argparse only takes positionals in one run)."""
    parse_known = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        ns, rest = parse_known(args, namespace)
        extra = [a for a in rest if "=" in a and not a.startswith("-")]
        ns.overrides = list(getattr(ns, "overrides", None) or []) + extra
        return ns, [a for a in rest if a not in extra]

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def run_train(args: argparse.Namespace) -> int:
    from ..distributed import init_distributed, shutdown
    from ..train import Trainer, load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.recipe).stem
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise HificodecError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    ctx = init_distributed(recipe.train.device)
    logging.basicConfig(
        level=logging.INFO if ctx.is_main else logging.WARNING,
        format=f"%(asctime)s [rank {ctx.rank}] %(levelname)s %(message)s", stream=sys.stderr,
    )
    try:
        trainer = Trainer(recipe, args.data, out, valid=args.valid, resume=args.resume, ctx=ctx)
        state = trainer.fit()
    finally:
        shutdown(ctx)
    if ctx.is_main:
        best = f", best validation mel {state.best_valid_mel:.4f}" if state.best_valid_mel is not None else ""
        print(f"trained to step {state.step} in {out} (skipped files: {state.skipped_files}, "
              f"skipped steps: {state.bad_steps}{best})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..files import check_output_folder
    from ..train.export import export_run, pick_checkpoint

    check_output_folder(args.out_dir, [Path(args.run_dir)], replaced=True)  # before anything is read
    # name the checkpoint taken: "best" falls back to the last one when the run had no validation
    source = pick_checkpoint(Path(args.run_dir), args.checkpoint)
    out = export_run(args.run_dir, args.out_dir, source.name, ema=False if args.live_weights else None)
    why = " (no best checkpoint: no validation ran)" if args.checkpoint == "best" != source.name else ""
    print(f"exported {args.run_dir} checkpoint {source.name}{why} to {out}")
    return 0
