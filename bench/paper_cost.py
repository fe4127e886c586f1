"""What the paper recipes (recipes/paper/) cost: a step measured on this CPU at a small batch, its FLOPs,
peak memory, checkpoint sizes, and the GPU-hours that follow at the paper's global batch.

    python bench/paper_cost.py [--recipes hificodec-16k-320d ...] [--batch 1] [--steps 2] [--threads 1]

Every recipe runs in its own process (peak RSS is per process) on synthetic audio at the recipe's rate
(speed does not depend on the data), with the adversarial terms on from the first step (the Encodec
recipes start them at step 500: the cost of the steps that follow): one warm-up step, one step under
torch's FLOP counter (convolutions and matrix products, forward and backward; FFTs are not counted),
then `--steps` timed. One checkpoint is written and its files measured; the bfloat16 optimizer state
(`train.optimizer_state_dtype`) is sized from the same tensors.

The GPU estimate scales the counted FLOPs linearly to the paper's global batch and divides by an H200's
bf16 dense rate (790 TFLOP/s, measured on this workplace's H200s: hificodec.train.leg.H200_PEAK_FLOPS)
at `--mfu` utilisation. docs/reproduce.md explains the choice of utilisation.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a tokenize.py that would shadow the standard library's (torch imports it): look in bench/ last
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p not in (_HERE, "")] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from _common import emit, time_train_steps  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "recipes" / "paper"
# the paper's global batch: the per-GPU batch of the recipe x 8 GPUs (recipes/paper/*.yaml, AcademiCodec)
GPUS_IN_PAPER = 8
H200_BF16_FLOPS = 790e12
RECIPES = [
    "hificodec-16k-320d", "hificodec-24k-240d", "hificodec-24k-240d-8q", "hificodec-24k-320d",
    "encodec-16k-320d", "encodec-24k-240d", "encodec-24k-32d", "soundstream-16k-320d", "soundstream-24k-240d",
]


def make_data(folder: Path, sample_rate: int, n: int = 4) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        t = np.arange(int(1.5 * sample_rate)) / sample_rate
        x = 0.2 * np.sin(2 * np.pi * (100 + 20 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(folder / f"clip{i}.wav", x.astype(np.float32), sample_rate)


def _files_mb(folder: Path, name: str) -> float:
    return sum(f.stat().st_size for f in folder.glob(f"{name}*")) / 1e6


def run_one(name: str, batch: int, steps: int) -> dict:
    """Child process: one recipe's step time, FLOPs, memory and checkpoint sizes."""
    from hificodec.checkpoint import build
    from hificodec.train import Trainer, load_recipe
    from hificodec.train.checkpoints import flatten_optimizer
    from hificodec.train.leg import count_flops

    overrides = ["losses.adversarial.start_step=0", f"data.batch_size={batch}", "train.progress=false",
                 "train.device=cpu", "valid.every=1000000000"]
    recipe = load_recipe(PAPER / f"{name}.yaml", overrides)
    paper_batch = load_recipe(PAPER / f"{name}.yaml").data.batch_size * GPUS_IN_PAPER
    sample_rate = int(build(recipe.model).sample_rate)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        make_data(data, sample_rate)
        trainer = Trainer(recipe, str(data), Path(tmp) / "run")
        counted: list[float] = []
        warmup, times = time_train_steps(
            trainer, steps, lambda batches: counted.append(count_flops(lambda: trainer.train_step(next(batches))))
        )
        flops = counted[0]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        path = trainer.save_checkpoint()
        assert path is not None
        sizes = {part: _files_mb(path, part) for part in ("generator", "discriminator", "optimizers")}
        sizes["total"] = sum(f.stat().st_size for f in path.iterdir()) / 1e6
        optimizers = [("generator", trainer.opt_g)] + ([("discriminator", trainer.opt_d)] if trainer.opt_d else [])
        sizes["optimizers_bfloat16"] = sum(
            t.nbytes for n, o in optimizers for t in flatten_optimizer(n, o, torch.bfloat16)[0].values()) / 1e6
    s_per_step = float(np.median(times))
    return {
        "recipe": f"paper/{name}", "batch": batch, "segment_samples": trainer.segment_options.segment_samples,
        "sample_rate": sample_rate, "paper_global_batch": paper_batch, "s_per_step": s_per_step,
        "warmup_s": warmup, "gflop_per_step": flops / 1e9, "cpu_gflop_per_s": flops / 1e9 / s_per_step,
        "peak_rss_mb": rss, "params_g_m": sum(p.numel() for p in trainer.model.parameters()) / 1e6,
        "params_d_m": sum(p.numel() for p in trainer.disc.parameters()) / 1e6 if trainer.disc else 0.0,
        "checkpoint_mb": sizes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", nargs="*", default=RECIPES, help="names under recipes/paper/")
    ap.add_argument("--batch", type=int, default=1, help="clips per step measured on the CPU")
    ap.add_argument("--steps", type=int, default=2, help="timed steps after the warm-up and the FLOP count")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mfu", type=float, default=0.2, help="assumed GPU utilisation of the bf16 peak")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(run_one(args.one, args.batch, args.steps)))
        return

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE"}
    results = []
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}; GPU: H200 bf16 "
          f"{H200_BF16_FLOPS / 1e12:.0f} TFLOP/s at {args.mfu:.0%} utilisation")
    print("recipe | s/step | GFLOP/step | CPU GFLOP/s | RSS MB | G/D params M | ckpt MB (opt; opt bf16) | "
          "global batch | H200 s/step | H200 h per 100k steps")
    for name in args.recipes:
        cmd = [sys.executable, __file__, "--one", name, "--batch", str(args.batch), "--steps", str(args.steps),
               "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT / "bench")
        if proc.returncode != 0:
            print(f"{name}: failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        scale = r["paper_global_batch"] / r["batch"]
        r["gpu_s_per_step"] = r["gflop_per_step"] * 1e9 * scale / (H200_BF16_FLOPS * args.mfu)
        r["gpu_hours_per_100k_steps"] = r["gpu_s_per_step"] * 1e5 / 3600
        r["cpu_s_per_step_at_paper_batch"] = r["s_per_step"] * scale
        results.append(r)
        c = r["checkpoint_mb"]
        print(f"{r['recipe']} | {r['s_per_step']:.2f} | {r['gflop_per_step']:.1f} | {r['cpu_gflop_per_s']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['params_g_m']:.1f}/{r['params_d_m']:.1f} | {c['total']:.0f} "
              f"({c['optimizers']:.0f}; {c['optimizers_bfloat16']:.0f}) | {r['paper_global_batch']} | "
              f"{r['gpu_s_per_step']:.3f} | {r['gpu_hours_per_100k_steps']:.1f}", flush=True)
    emit("paper_cost", {"torch": torch.__version__, "threads": args.threads, "batch": args.batch, "mfu": args.mfu,
                        "results": {r["recipe"]: r for r in results}})


if __name__ == "__main__":
    main()
