"""`hificodec report`: rebuild the HTML page from earlier eval folders, merging their systems."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import HificodecError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="build the HTML report page from one or more eval folders (compare runs without re-running eval)",
        description=(
            "Read eval folders (summary.json, results.csv, listening.json and its clips) and write index.html: "
            "the summary table of every system, the rate-quality plot, the listening section and the errors. "
            "Systems of several folders are merged (a baseline run found in several folders is shown once "
            "when its results are the same in each, else once per folder, named after it; files are matched "
            "by name)."
        ),
    )
    p.add_argument("results", nargs="+", metavar="RESULTS_DIR", help="folders written by `hificodec eval --out`")
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="page folder (default: the RESULTS_DIR itself when there is one; required for several)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the rate-quality figure (no matplotlib)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..eval.html import INDEX, check_distinct, write_page

    check_distinct(args.results)  # before asking for --out: `report A A` is one folder, not a comparison
    out = args.out
    if out is None:
        if len(args.results) > 1:
            raise HificodecError("several RESULTS_DIRs: give --out DIR for the comparison page")
        out = args.results[0]
    written = write_page(args.results, out, plots=not args.no_plots)
    print(f"wrote {len(written)} files; report page: {os.path.join(out, INDEX)}", file=sys.stderr)
    return 0
