"""`hificodec` command line: a thin layer over the Python API.

Each subcommand lives in its own module under `hificodec.cli` and exposes
`register(subparsers) -> None`, which adds its parser and sets `func=handler(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import HificodecError

# Subcommand modules, in the order `--help` lists them.
COMMAND_MODULES: list[str] = [
    "hificodec.cli.models_cmd",
    "hificodec.cli.codec_cmd",
    "hificodec.cli.tokenize_cmd",
    "hificodec.cli.data_cmd",
    "hificodec.cli.eval_cmd",
    "hificodec.cli.train_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hificodec",
        description="Neural audio codecs: HiFi-Codec (group-residual VQ), Encodec, SoundStream.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HificodecError as e:
        print(f"hificodec {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hificodec {args.command}: interrupted", file=sys.stderr)
        return 130


def _version() -> str:
    from .. import __version__

    return __version__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
