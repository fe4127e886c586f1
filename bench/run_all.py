"""Run every bench script (bench/*.py) and print one table of their results.

    python bench/run_all.py [--only speed,memory] [--timeout 1800] [--json results.json]

Each script prints its own report and, as its last stdout line, `BENCH_JSON {...}` (see README.md).
Scripts that are expected but not written yet are listed as missing; a script that fails or prints
no result line is reported and does not stop the others. Exit status: 0 if every script that exists
ran and gave a result, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: scripts the project plans to have; others found in bench/ are run too
# not tokenize.py: it would shadow the stdlib module
EXPECTED = ["speed", "train_speed", "memory", "tokenize_speed", "streaming"]
MARKER = "BENCH_JSON "
SKIP = {"run_all"}


def discover() -> list[str]:
    found = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem not in SKIP)
    return [n for n in EXPECTED if n in found] + [n for n in found if n not in EXPECTED]


def parse_result(stdout: str) -> dict[str, Any] | None:
    """The JSON of the last `BENCH_JSON` line, or None."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith(MARKER):
            try:
                value = json.loads(line[len(MARKER) :])
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else {"value": value}
    return None


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, value)]


def run_one(name: str, timeout: float) -> dict[str, Any]:
    path = HERE / f"{name}.py"
    if not path.is_file():
        return {"bench": name, "status": "missing", "seconds": None, "result": None}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(path)], cwd=HERE, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"bench": name, "status": f"timeout after {timeout:g} s", "seconds": timeout, "result": None}
    seconds = time.perf_counter() - t0
    sys.stdout.write(proc.stdout)
    result = parse_result(proc.stdout)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [""]
        status = f"failed (exit {proc.returncode}) {tail[0][:120]}"
    elif result is None:
        status = "no BENCH_JSON line"
    else:
        status = "ok"
    return {"bench": name, "status": status, "seconds": seconds, "result": result}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def table(runs: list[dict[str, Any]]) -> str:
    w = max([14] + [len(r["bench"]) for r in runs])
    lines = [f"{'bench':{w}s} {'status':10s} {'time':>7s}  result", "-" * (w + 64)]
    for r in runs:
        secs = f"{r['seconds']:6.0f}s" if r["seconds"] is not None else f"{'-':>7s}"
        items = [(k, v) for k, v in flatten(r["result"] or {}) if k != "bench"]
        status = r["status"] if len(r["status"]) <= 10 else r["status"][:10]
        first = f"{items[0][0]} = {_fmt(items[0][1])}" if items else (r["status"] if status != r["status"] else "")
        lines.append(f"{r['bench']:{w}s} {status:10s} {secs}  {first}")
        lines += [f"{'':{w + 19}s}{k} = {_fmt(v)}" for k, v in items[1:]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="comma-separated script names (default: all)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per script (default 1800)")
    ap.add_argument("--json", default=None, help="also write all results to this JSON file")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else discover() + [n for n in EXPECTED if n not in discover()]
    runs = []
    for name in names:
        print(f"=== bench/{name}.py", flush=True)
        runs.append(run_one(name.strip().removesuffix(".py"), args.timeout))
    print("\n" + table(runs))
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r["status"] in ("ok", "missing") for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
