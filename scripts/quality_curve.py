"""Quality against training cost: one line per design, from a CSV of scored checkpoints.

    python scripts/quality_curve.py docs/quality-curve.csv -o docs/results-quality-curve.png

The CSV has the columns `design, cpu_minutes, pesq_wb, stoi` (and any others, ignored): one row per
scored export of a run (`scripts/rate_ladder.py ... --codebooks 4 --no-unquantized` on its periodic
exports gives the scores; `cpu_minutes` is the training process's CPU time at that step, in minutes
of one thread). Draws PESQ-WB and STOI against CPU-thread hours on a log axis, so that designs are
compared at equal cost.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path


def read_rows(path: Path) -> dict[str, list[tuple[float, float, float]]]:
    """design -> [(cpu hours, PESQ-WB, STOI)], sorted by cost."""
    lines: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            lines[row["design"]].append(
                (float(row["cpu_minutes"]) / 60, float(row["pesq_wb"]), float(row["stoi"]))
            )
    return {k: sorted(v) for k, v in lines.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    args = p.parse_args(argv)
    try:
        lines = read_rows(args.csv)
    except (OSError, KeyError, ValueError) as e:
        print(f"quality_curve: {args.csv}: {e}", file=sys.stderr)
        return 1
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for design, points in lines.items():
        hours = [h for h, _, _ in points]
        for ax, i in zip(axes, (1, 2)):
            ax.plot(hours, [pt[i] for pt in points], marker="o", label=design)
    for ax, name in zip(axes, ("PESQ-WB", "STOI")):
        ax.set_xscale("log")
        ax.set_xlabel("training cost (CPU-thread hours)")
        ax.set_ylabel(f"test {name} at 2 kbps")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    tmp = args.out.with_name(args.out.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
