"""A training leg on a borrowed GPU, in two halves around one `run` call (docs/gpu.md).

    python scripts/gpu_leg.py prepare --corpus corpus/16k --leg 1     # here: pack, wheels, the exact call
    (the printed `run` call, on the GPU machine: scripts/gpu_leg.py run ...)
    python scripts/gpu_leg.py finish RETURNED_DIR --leg 1 --corpus corpus/16k   # here: score, ship if better

`--model NAME` (both halves; default hificodec-16k) picks the model line: the leg starts from the
installed `src/hificodec/pretrained/NAME` with `recipes/NAME/gpu-leg.yaml`, and `finish` scores against
it and adds the release to NAME's series (e.g. `--model hificodec-16k-mel`).

`prepare` builds the carried folder (default `.leg/`, git-ignored): the cp312 wheels that read the pack
on the GPU image, the start model's `leg-state.safetensors` when it belongs to its weights (Adam's
moments, the discriminator, the schedule's position: hificodec.train.leg_state), a device pack of the
leg's slice of the training split cut to what the tree and the rest leave of the 64 MiB, and
`leg.json`; it prints the hours packed, the command, the carry list and a timeout.
`run` is the device half (hificodec.train.leg.run_leg). `finish` loads the returned shards, scores them
and the shipped model on the validation split with the evaluation's metrics, installs the leg's model
(with its discriminator and leg state) as the next release of the line if it is better, and adds a row
to the learning-curve table.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the leg runs from the repository root, here and there
TRAVEL_LIMIT_MIB = 64.0
COMMAND_LIMIT_S = 600
WHEELS = ("soundfile==0.14.0", "cffi==2.1.1", "pycparser==3.12")  # libsndfile with Opus, for Python 3.12
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
DEFAULT_LINE = "hificodec-16k"
COMPILE_PARTS = ("losses", "discriminator", "generator")  # compiled in this order (hificodec.train.compiled)
TRAVEL_MARGIN_MIB = 0.25  # left free under the limit: leg.json, a file added to the tree before the run


def model_dir(line: str) -> str:
    """The installed folder of a model line (relative to the repository root)."""
    return f"src/hificodec/pretrained/{line}"


def leg_recipe(line: str) -> str:
    return f"recipes/{line}/gpu-leg.yaml"
CURVE_HEADER = "## Learning curve: GPU legs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="build the carried folder and print the run call")
    p.add_argument("--corpus", default="corpus/16k", help="corpus folder with train.jsonl (default corpus/16k)")
    p.add_argument("--train", help="training manifest (default CORPUS/train.jsonl)")
    p.add_argument("--leg", type=int, required=True, help="leg number: picks the slice (leg mod --slices)")
    p.add_argument("--slices", type=int, default=3, help="the train split is dealt into this many packs")
    p.add_argument("--model", default=DEFAULT_LINE, help="model line the leg trains (default hificodec-16k)")
    p.add_argument("--model-dir", help="the model the leg starts from (default src/hificodec/pretrained/MODEL)")
    p.add_argument("--recipe", help="leg recipe (default recipes/MODEL/gpu-leg.yaml)")
    p.add_argument("--minutes", type=float, default=9.0, help="the leg's own budget (the timeout adds a minute)")
    p.add_argument("--max-mib", type=float, default=30.0,
                   help="pack size limit (the pack is also cut to what the tree and the rest of the carry leave)")
    p.add_argument("--kbps", type=float, default=24.0, help="Opus bitrate of the pack")
    p.add_argument("--dest", default=".leg", help="carried folder (git-ignored)")
    p.add_argument("--no-wheels", action="store_true", help="skip the soundfile wheels (a CPU rehearsal)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batches", default="64,128,256,512",
                   help="batch sizes the smoke pass times (those the device's memory holds); the leg trains at the "
                        "one with the most clips/s, its learning rate scaled by sqrt(batch / recipe batch)")
    p.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                   help="torch.compile the step: auto tries when the leg's remaining time can pay for the compile")
    p.add_argument("--compile-parts", default=",".join(COMPILE_PARTS),
                   help="what is compiled, among losses, discriminator, generator (in that order, until the "
                        "compile would not pay back)")
    p.add_argument("--compile-backend", default="inductor",
                   help="torch.compile backend (eager or aot_eager to rehearse the path without code generation)")
    p.add_argument("--compile-estimate", type=float, default=150.0,
                   help="seconds a cold compile is assumed to take when deciding (auto)")
    p.add_argument("--compile-tolerance", type=float,
                   help="largest relative difference between the compiled and the eager step's losses "
                        "(default by precision: hificodec.train.compiled.TOLERANCE)")
    p.add_argument("--fresh-optimizer", action="store_true",
                   help="do not carry the start model's leg state (Adam's moments, the schedule's position)")
    p.add_argument("--travel-limit-mib", type=float, default=TRAVEL_LIMIT_MIB, help="the device tool's limit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides for the leg")
    p.set_defaults(func=prepare)

    r = sub.add_parser("run", help="the device half: self-check, smoke pass, train, export")
    r.add_argument("--leg-dir", default=".leg")
    r.add_argument("--out", required=True, help="where exports and the log go ($OUT on the device)")
    r.add_argument("--minutes", type=float, required=True)
    r.add_argument("--device", default="cuda")
    r.add_argument("--no-selfcheck", action="store_true")
    r.add_argument("--smoke-steps", type=int, default=30)
    r.add_argument("--run-dir", help="the trainer's run folder (default /tmp/hificodec-leg-run)")
    r.add_argument("--margin-minutes", type=float, default=0.5, help="kept for the final checkpoint and export")
    r.add_argument("--compile", choices=("auto", "on", "off"), help="override the prepared compile policy")
    r.set_defaults(func=run)

    f = sub.add_parser("finish", help="score the returned model, ship it if better, record the leg")
    f.add_argument("returned", help="the folder the run's files came back to (holds export/ and log.jsonl)")
    f.add_argument("--leg", type=int, required=True)
    f.add_argument("--corpus", default="corpus/16k")
    f.add_argument("--valid", help="validation manifest (default CORPUS/valid.jsonl)")
    f.add_argument("--clips", type=int, default=60, help="validation files scored (spread over the split)")
    f.add_argument("--model", default=DEFAULT_LINE, help="model line of the leg (default hificodec-16k)")
    f.add_argument("--shipped", help="the model to beat (default: the installed MODEL)")
    f.add_argument("--install", help="folder a better model is installed to (default: the shipped model's folder)")
    f.add_argument("--releases", help="release index the new release is added to (default: the package's)")
    f.add_argument("--results", default="docs/results.md", help="the file holding the learning-curve table")
    f.add_argument("--gpu-minutes", type=float, help="device time the leg cost (from the run's reply)")
    f.add_argument("--workers", type=int, default=2)
    f.set_defaults(func=finish)

    args = parser.parse_args(argv)
    from hificodec.errors import HificodecError

    try:
        return int(args.func(args) or 0)
    except HificodecError as e:
        print(f"gpu_leg {args.command}: error: {e}", file=sys.stderr)
        return 2


# ---- prepare ------------------------------------------------------------------------------------
def prepare(args: argparse.Namespace) -> int:
    from hificodec.data.device_pack import deal_slices, write_device_pack
    from hificodec.data.manifest import read_entries
    from hificodec.errors import HificodecError
    from hificodec.train import load_recipe

    start = args.model_dir or model_dir(args.model)
    if not (REPO / start / "config.yaml").is_file():
        raise HificodecError(f"model line '{args.model}' has no installed model in {start} to start a leg from")
    args.recipe = args.recipe or leg_recipe(args.model)
    # the leg starts from the line's installed model, whatever the recipe names
    args.overrides = [f"train.init_from={start}", *args.overrides]
    recipe = load_recipe(args.recipe, args.overrides)  # a bad recipe fails here, not on the GPU
    if recipe.model.get("name") != args.model:
        trains = recipe.model.get("name")
        raise HificodecError(f"{args.recipe} trains '{trains}', not the line '{args.model}' (--model)")
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    manifest = args.train or str(Path(args.corpus) / "train.jsonl")
    entries = [e for e in read_entries(manifest) if not e.synthetic]
    slice_index = args.leg % args.slices
    parts = [x.strip() for x in args.compile_parts.split(",") if x.strip()]
    if set(parts) - set(COMPILE_PARTS):
        raise HificodecError(f"--compile-parts: expected some of {', '.join(COMPILE_PARTS)}, "
                             f"got {args.compile_parts!r}")
    compile_settings: dict = {"policy": args.compile, "parts": parts, "estimate_s": args.compile_estimate}
    if args.compile_backend != "inductor":
        compile_settings["backend"] = args.compile_backend
    if args.compile_tolerance is not None:
        compile_settings["tolerance"] = args.compile_tolerance
    leg = {
        "leg": args.leg, "slice": slice_index, "slices": args.slices, "recipe": args.recipe,
        "overrides": args.overrides, "model": start, "shard_mib": 15, "kbps": args.kbps, "manifest": manifest,
        "batch_candidates": _batch_list(args.batches), "compile": compile_settings,
    }
    if not args.no_wheels:
        _download_wheels(dest / "wheels")
    leg["state"] = _carry_state(Path(start) if Path(start).is_absolute() else REPO / start, dest, args.fresh_optimizer)

    # the pack gets what the tree, the wheels and the state leave of the travel limit
    tree = _travelling_bytes()
    others = sum(_folder_bytes(p) if p.is_dir() else p.stat().st_size
                 for p in dest.iterdir() if p.name not in ("pack", "leg.json"))
    room = (args.travel_limit_mib - TRAVEL_MARGIN_MIB) * 2**20 - tree - others
    max_mib = min(args.max_mib, math.floor(room / 2**20 * 100) / 100)
    if max_mib <= 0:
        raise HificodecError(f"{(tree + others) / 2**20:.1f} MiB would travel before the pack (tree {tree / 2**20:.1f} "
                             f"MiB, carry {others / 2**20:.1f} MiB) of the {args.travel_limit_mib:g} MiB limit: no "
                             "room for a pack")
    leg["max_mib"] = max_mib
    old = _read_json(dest / "leg.json")
    old_index = _read_json(dest / "pack" / "index.json")
    pack_keys = ("slice", "slices", "kbps", "manifest")
    # an earlier pack of the same slice is kept when it fits and is not much smaller than what fits now
    same_pack = (old is not None and old_index is not None and all(old.get(k) == leg[k] for k in pack_keys)
                 and old_index.get("bytes", math.inf) <= max_mib * 2**20
                 and float(old.get("max_mib", 0)) >= max_mib - 1.0)
    part = deal_slices(entries, args.slices)[slice_index]
    if not same_pack:
        t = time.perf_counter()
        index = write_device_pack(part, dest / "pack", sample_rate=16000, kbps=args.kbps, max_mib=max_mib,
                                  progress=True)
        print(f"pack: {time.perf_counter() - t:.0f} s")
    else:
        index = old_index
        leg["max_mib"] = old["max_mib"]
        print(f"pack: reusing {dest / 'pack'}")
    slice_hours = sum(e.duration or 0.0 for e in part) / 3600
    packed_hours = index["seconds"] / 3600
    print(f"pack: slice {slice_index} of {args.slices}: {len(index['clips'])} of {len(part)} clips, "
          f"{packed_hours:.2f} h of the slice's {slice_hours:.2f} h, {len({c[3] for c in index['clips']})} speakers, "
          f"{index['bytes'] / 2**20:.1f} MiB (limit {leg['max_mib']:g} MiB: what the tree and the carry leave)")
    (dest / "leg.json").write_text(json.dumps(leg, indent=1), encoding="utf-8")

    carry = _folder_bytes(dest)
    total = (tree + carry) / 2**20
    print(f"travels: tree {tree / 2**20:.1f} MiB + carry {carry / 2**20:.1f} MiB = {total:.1f} MiB "
          f"(limit {args.travel_limit_mib:g})")
    if total > args.travel_limit_mib:
        raise HificodecError(f"{total:.1f} MiB would travel, over {args.travel_limit_mib:g} MiB: lower --max-mib")
    command = leg_command(dest.as_posix(), args.minutes, args.device, wheels=not args.no_wheels)
    timeout = min(COMMAND_LIMIT_S, int(args.minutes * 60 + 60))
    print("\nrun call:")
    print(json.dumps({"command": command, "carry": [dest.as_posix()], "timeout_s": timeout}, indent=1))
    return 0


def _carry_state(start: Path, dest: Path, fresh: bool) -> str | None:
    """Copy the start model's leg state (`leg-state.safetensors`: discriminator, Adam's compact moments, the
    schedule's position) into the carried folder when it belongs to the start model's weights."""
    from hificodec.checkpoint import load as load_model
    from hificodec.releases import weights_digest
    from hificodec.train.leg_state import STATE_FILE, read_leg_state

    target = dest / STATE_FILE
    target.unlink(missing_ok=True)
    source = start / STATE_FILE
    if fresh or not source.is_file():
        print("optimizer: fresh (" + ("--fresh-optimizer" if fresh else f"{start} holds no {STATE_FILE}") + ")")
        return None
    state = read_leg_state(source)
    digest = weights_digest(load_model(start).state_dict())
    if state.generator_digest != digest:
        print(f"optimizer: fresh ({source} belongs to other generator weights than {start}'s)")
        return None
    shutil.copy2(source, target)
    c = state.counters
    print(f"optimizer: carried from legs {c.legs}: schedule at step {c.schedule_steps:.0f} (batch {c.base_batch}), "
          f"{c.clips} clips seen, {target.stat().st_size / 2**20:.2f} MiB")
    return STATE_FILE


def _batch_list(text: str) -> list[int]:
    from hificodec.errors import HificodecError

    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise HificodecError(f"--batches: expected sizes like 64,128, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise HificodecError(f"--batches: expected positive sizes, got {text!r}")
    return sizes


def leg_command(leg_dir: str, minutes: float, device: str = "cuda", wheels: bool = True) -> str:
    """The device command: wheels into /tmp/site, the source tree on the path, output teed into $OUT."""
    parts = ["set -o pipefail"]
    if wheels:
        parts.append(f"python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade "
                     f"--target /tmp/site {leg_dir}/wheels/*.whl || exit 3")
    parts.append("export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1")
    parts.append("nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv || true")
    parts.append(f"python3 scripts/gpu_leg.py run --leg-dir {leg_dir} --out $OUT --minutes {minutes:g} "
                 f"--device {device} 2>&1 | tee $OUT/leg.log")
    command = "; ".join(parts)
    assert len(command) <= 2000, "the device tool takes commands of at most 2000 characters"
    return command


def _download_wheels(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = {w.split("==")[0] for w in WHEELS}
    present = {p.name.split("-")[0].lower() for p in folder.glob("*.whl")}
    if names <= present:
        return
    platforms = [x for p in WHEEL_PLATFORMS for x in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", *platforms, "-d", str(folder), *WHEELS]
    subprocess.run(cmd, check=True)


def _travelling_bytes() -> int:
    """Tracked and untracked-not-ignored files: what the device tool sends besides the carry."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], capture_output=True, check=True,
                            cwd=REPO)
    paths = (REPO / p for p in listed.stdout.decode().split("\0") if p)
    return sum(p.stat().st_size for p in paths if p.is_file())


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ---- run (on the device) -----------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    import logging

    from hificodec.train.leg import run_leg

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    summary = run_leg(args.leg_dir, args.out, args.minutes, device=args.device, selfcheck=not args.no_selfcheck,
                      smoke_steps=args.smoke_steps, margin_minutes=args.margin_minutes, run_dir=args.run_dir,
                      repo=REPO, compile_policy=args.compile)
    print(f"[leg] done: {summary['train']['steps']} steps in {summary['minutes']} min")
    return 0


# ---- finish ---------------------------------------------------------------------------------------
def finish(args: argparse.Namespace) -> int:
    import torch

    import hificodec
    from hificodec import releases
    from hificodec.checkpoint import pretrained_dir, read_digest, stored_model_hash, write_digest, write_model_files
    from hificodec.errors import HificodecError
    from hificodec.eval.runner import EvalConfig, evaluate
    from hificodec.files import atomic_directory
    from hificodec.releases import weights_digest
    from hificodec.train.leg_state import STATE_FILE, read_leg_state

    returned = Path(args.returned)
    export = returned / "export"
    model = hificodec.load(export)  # reads the shards; fails clearly on a missing or corrupt one
    if model.name != args.model:
        raise HificodecError(f"{export} holds a '{model.name}' model, not the line '{args.model}' (--model)")
    shipped = args.shipped or str(REPO / model_dir(args.model))
    lines = [json.loads(x) for x in (returned / "log.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    legs = [x for x in lines if x.get("kind") == "leg"]
    if not legs:
        raise HificodecError(f"{returned / 'log.jsonl'}: no leg summary (did the run end?)")
    leg = legs[-1]
    train = leg.get("train") or {}
    mfus = [x["mfu"] for x in lines if x.get("kind") == "train" and "mfu" in x]
    print(f"returned: step {train.get('steps')}, batch {train.get('batch')}, "
          f"{train.get('steps_per_s')} steps/s, {leg.get('minutes')} min")

    valid = args.valid or str(Path(args.corpus) / "valid.jsonl")
    scores = {}
    for name, path in (("shipped", shipped), ("leg", str(export))):
        report = evaluate(EvalConfig(source=valid, models=[path], limit=args.clips, spread=True,
                                     workers=args.workers, progress=False))
        metrics = report.summary["systems"][0]["metrics"]
        scores[name] = {m: metrics[m]["mean"] for m in ("pesq_wb", "stoi", "mel_distance")}
        print(f"{name:8s} PESQ-WB {scores[name]['pesq_wb']:.3f}  STOI {scores[name]['stoi']:.3f}  "
              f"mel {scores[name]['mel_distance']:.3f}  ({args.clips} validation files)")
    before, after = scores["shipped"], scores["leg"]
    better = after["pesq_wb"] > before["pesq_wb"] and after["stoi"] >= before["stoi"]
    state_file = export / STATE_FILE
    state = read_leg_state(state_file) if state_file.is_file() else None
    if state is not None and state.generator_digest != weights_digest(model.state_dict()):
        raise HificodecError(f"{state_file} belongs to other generator weights than {export}'s")
    if better:
        install = Path(args.install) if args.install else pretrained_dir() / args.model
        with atomic_directory(install) as tmp:
            write_model_files(model, tmp, dtype=torch.float16)
            if state is not None:  # the discriminator as the leg left it, and the state the next leg carries on
                _write_discriminator(tmp / "discriminator", state.discriminator_weights(), state.discriminators)
                shutil.copy2(state_file, tmp / STATE_FILE)
                write_digest(tmp, [tmp / name for name in (read_digest(tmp) or {})] + [tmp / STATE_FILE])
            elif (export / "discriminator").is_dir():  # a leg from before the leg state: as it came back (fp16)
                shutil.copytree(export / "discriminator", tmp / "discriminator")
        index_path = Path(args.releases) if args.releases else pretrained_dir() / releases.INDEX_FILE
        release = releases.add_release(
            index_path, model.name, stored_model_hash(install),
            summary=f"GPU leg {args.leg}: {train.get('steps')} steps at batch {train.get('batch')}",
            made_by=f"recipe chain {model.name} up to GPU leg {args.leg}",
            scores={"valid": {"files": args.clips, **{k: round(v, 4) for k, v in after.items()}}},
        )  # fmt: skip
        print(f"installed as release {release.id} in {install} (better on PESQ-WB and STOI). Next: pin it "
              f"(`PYTHONPATH=src python tests/test_pretrained.py {model.name}`) and score the test split into "
              "the release index (docs/gpu.md)")
    else:
        print("not installed: the leg's model does not beat the shipped one on PESQ-WB and STOI")
    audio_rate = train.get("audio_s_per_s")
    row = (f"| {args.leg} | {_fmt(args.gpu_minutes, 1)} | {train.get('steps')} | {train.get('batch')} | "
           f"{_fmt(train.get('steps_per_s'), 1)} | {_fmt(audio_rate, 0)} | "
           f"{_fmt(statistics.median(mfus) * 100 if mfus else None, 1)} % | "
           f"{before['pesq_wb']:.3f} -> {after['pesq_wb']:.3f} | {before['stoi']:.3f} -> {after['stoi']:.3f} | "
           f"{before['mel_distance']:.3f} -> {after['mel_distance']:.3f} | {'yes' if better else 'no'} |")
    _add_curve_row(Path(args.results), row)
    print(row)
    return 0


def _write_discriminator(folder: Path, weights: dict, settings: dict) -> None:
    """discriminator/ as `train.export.write_export` writes it (what `train.init_from` reads)."""
    import yaml
    from safetensors.torch import save_file

    from hificodec.checkpoint import FORMAT_VERSION, write_digest

    folder.mkdir()
    save_file(weights, str(folder / "discriminator.safetensors"), metadata={"format_version": str(FORMAT_VERSION)})
    (folder / "config.yaml").write_text(yaml.safe_dump({"discriminators": settings}, sort_keys=False),
                                        encoding="utf-8")
    write_digest(folder, [folder / "discriminator.safetensors", folder / "config.yaml"])


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _add_curve_row(path: Path, row: str) -> None:
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if CURVE_HEADER not in text:
        text = text.rstrip("\n") + ("\n\n" if text else "") + (
            f"{CURVE_HEADER}\n\n"
            "Each row is one leg (`scripts/gpu_leg.py`, docs/gpu.md); validation scores are the evaluation's\n"
            "metrics on the same validation files for the shipped model before the leg and for the leg's model.\n\n"
            "| leg | GPU min | steps | batch | steps/s | audio s/s | MFU | valid PESQ-WB | valid STOI | valid mel "
            "| shipped |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n"
        )
    head, sep, tail = text.partition(CURVE_HEADER)
    table_end = tail.find("\n\n", tail.find("|---"))
    if table_end < 0:
        tail = tail.rstrip("\n") + "\n" + row + "\n"
    else:
        tail = tail[:table_end] + "\n" + row + tail[table_end:]
    path.write_text(head + sep + tail, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
