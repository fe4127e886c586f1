"""`hificodec replay CHAIN`: rerun the recipe chain that made a released model (hificodec.train.replay).

    hificodec replay hificodec-16k --corpus corpus/16k --out runs/replay [--dry-run] [--until STAGE]
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "replay", help="rerun the recipe chain that made a released model, stage by stage",
        description="Build the corpus (skipped when it exists), then train and export every stage of a chain "
        "(recipes/NAME/chain.yaml) as ordinary `hificodec train` / `hificodec export` commands. Finished "
        "stages are skipped when run again; an interrupted stage resumes from its last checkpoint.",
    )
    p.add_argument("chain", help="chain name (recipes/NAME/chain.yaml, from the repository root) or chain.yaml path")
    p.add_argument("--corpus", required=True, help="corpus folder (built by `hificodec data build-corpus` if missing)")
    p.add_argument("--out", required=True, help="folder for the stages' runs and exports")
    p.add_argument("--until", metavar="STAGE", help="stop after this stage")
    p.add_argument("--dry-run", action="store_true", help="print every command with its resolved settings; run nothing")
    p.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    from ..train import replay

    chain = replay.load_chain(replay.find_chain(args.chain))
    steps = replay.plan(chain, args.corpus, args.out, until=args.until)
    if args.dry_run:
        print(replay.describe(steps))
        return 0
    replay.run(steps, echo=lambda line: print(line, flush=True))
    last = [s for s in steps if s.argv[0] == "export"][-1:]
    if last and (args.until is None or args.until == chain.stages[-1].id):
        print(f"release {chain.release}: {last[0].argv[2]}")
    return 0
