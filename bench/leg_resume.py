"""Two GPU legs in a row against one uninterrupted run, on the CPU with a tiny model (docs/gpu.md).

    python bench/leg_resume.py [--pretrain 400] [--steps 150] [--seeds 0] [--threads 1] [--json out.json]

(~7 minutes per seed on a 2-core CPU; docs/gpu.md's table is `--seeds 0,1`.)

Legs fine-tune a trained model, so every run starts from the same tiny HiFi-Codec (the tiny recipe with
its GAN) pretrained for `--pretrain` steps at lr 1e-3, then trains with the leg recipe's optimiser (AdamW,
betas 0.8/0.99, lr 3e-4 warmed up over 30 steps, then x0.998 per step) on the same synthetic harmonic
audio, in the same batch order, for 2 x `--steps` steps; the first leg starts Adam afresh, as a first leg
from a CPU-trained model does:

- `one run`: uninterrupted;
- `two legs, leg state`: what legs do: the first leg's export (float16 generator, `leg-state.safetensors`)
  starts a fresh trainer, which resumes the discriminator, Adam's factored second moments and the
  schedule's position (`hificodec.train.leg.resume`, `BatchScaling`);
- `two legs, leg state without momentum`: the same with Adam's first moment started at zero;
- `two legs, exact moments`: the same with Adam's exact float32 moments (what the compact state approximates);
- `two legs, fresh Adam, schedule goes on`: new moments, the schedule's position carried;
- `two legs, fresh Adam and schedule`: new moments and the schedule from its start (warm-up again): what
  legs 1 and 2 did.

It prints the mean training loss (total and mel) over windows of the second half, and the mel loss of the
final generator on fixed held-out clips, each averaged over `--seeds`.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p not in (_HERE, "")] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

CONFIGS = ("one run", "two legs, leg state", "two legs, leg state without momentum", "two legs, exact moments",
           "two legs, fresh Adam, schedule goes on", "two legs, fresh Adam and schedule")
WINDOWS = ((0, 10), (10, 40), (40, None))  # steps of the second half


def synthetic_pack(seconds: float = 40.0, clips: int = 24, seed: int = 0):
    """Harmonic tones with vibrato, varying f0 and harmonic weights, a little noise: speech-like enough
    for a tiny codec to learn over a few hundred steps."""
    from hificodec.data.device_pack import PackAudio

    rng = np.random.default_rng(seed)
    sr, parts, lengths = 16000, [], []
    for _ in range(clips):
        n = int(sr * seconds / clips)
        t = np.arange(n) / sr
        f0 = rng.uniform(90, 260) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        x = sum(rng.uniform(0.05, 0.3) / k * np.sin(k * phase) for k in range(1, 8))
        x = x * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)) + 0.005 * rng.standard_normal(n)
        parts.append(np.round(np.clip(x, -1, 1) * 32767).astype(np.int16))
        lengths.append(n)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return PackAudio(np.concatenate(parts), starts, np.array(lengths), [f"s{i % 6}" for i in range(clips)], sr)


def recipe(seed: int, extra: list[str] | None = None, pretrain: bool = False):
    from hificodec.train import load_recipe
    from hificodec.train.tiny_recipes import tiny_recipes

    raw = tiny_recipes()["hificodec"]
    raw["data"] = {"segment_seconds": 0.2, "batch_size": 4}
    lr = 1.0e-3 if pretrain else 3.0e-4
    raw["optim"] = {"generator": {"name": "adamw", "lr": lr, "betas": [0.8, 0.99], "weight_decay": 0.0},
                    "discriminator": {"name": "adamw", "lr": lr, "betas": [0.8, 0.99]},
                    "schedule": {"gamma": 1.0 if pretrain else 0.998, "per": "step", "warmup_steps": 30}}
    raw["seed"] = seed
    return load_recipe(raw, ["train.device=cpu", f"train.export_dtype={'float32' if pretrain else 'float16'}",
                             *(extra or [])])


def pretrain(steps: int, seed: int, pool, folder: Path) -> Path:
    from hificodec.train.leg import LegTrainer

    trainer = LegTrainer(recipe(seed, pretrain=True), pool, folder / "run")
    batches = trainer._batches()
    for _ in range(steps):
        trainer.train_step(next(batches))
    return trainer.export(folder / "export") or folder / "export"


def start_from(seed: int, export: Path, pool, run: Path):
    """A trainer on the given export: its generator (train.init_from), its discriminator (the leg state)."""
    from hificodec.train.leg import LegTrainer, resume
    from hificodec.train.leg_state import STATE_FILE, read_leg_state

    trainer = LegTrainer(recipe(seed, [f"train.init_from={export}"]), pool, run)
    state = read_leg_state(export / STATE_FILE)
    resume(trainer, state)
    return trainer, state


def run_config(name: str, steps: int, seed: int, pool, held_out: torch.Tensor, start: Path, work: Path) -> dict:
    from hificodec.train.leg import BatchScaling
    from hificodec.train.leg_state import LegCounters, full_adam, load_adam

    losses: list[dict[str, float]] = []

    def train(trainer, n: int) -> None:
        batches = trainer._batches()
        for _ in range(n):
            losses.append(trainer.train_step(next(batches)).losses)

    first, _ = start_from(seed, start, pool, work / "run1")
    first.opt_g.state.clear()  # a first leg: Adam from zero, the schedule from its start
    first.opt_d.state.clear()
    scaling = BatchScaling(first)
    first.counters = lambda: LegCounters(scaling.position(), scaling.base_batch, scaling.clips(), [1])
    train(first, steps)
    if name == "one run":
        train(first, steps)
        final = first
    else:
        first.export(work / "export")
        exact = full_adam(first.opt_g, first.model), full_adam(first.opt_d, first.disc)
        second, state = start_from(seed, work / "export", pool, work / "run2")  # the leg state resumed
        # the second leg sees the batches the one run sees next (a leg's pack is another slice of the data)
        second.state.epoch, second.state.batch_in_epoch = first.state.epoch, first.state.batch_in_epoch
        position = state.counters.schedule_steps
        if name == "two legs, leg state without momentum":
            state.restore("generator", second.opt_g, second.model, first_moments=False)
            state.restore("discriminator", second.opt_d, second.disc, first_moments=False)
        elif name != "two legs, leg state":
            second.opt_g.state.clear()
            second.opt_d.state.clear()
            if name == "two legs, exact moments":
                load_adam(second.opt_g, second.model, {}, "", full=exact[0])
                load_adam(second.opt_d, second.disc, {}, "", full=exact[1])
            elif name == "two legs, fresh Adam and schedule":
                position = 0.0
        BatchScaling(second, position).use(second.recipe.data.batch_size)
        train(second, steps)
        final = second
    final.model.eval()
    with torch.no_grad():
        fake = final.model(held_out).audio
        from hificodec.train.losses import multi_resolution_mel_loss

        held = float(multi_resolution_mel_loss(fake, held_out, 16000, final.recipe.losses["mel"].resolutions))
    second_half = losses[steps:]
    out = {"held_out_mel": held}
    for lo, hi in WINDOWS:
        window = second_half[lo:hi]
        label = f"{lo}-{hi if hi is not None else steps}"
        out[f"total {label}"] = float(np.mean([x["total"] for x in window]))
        out[f"mel {label}"] = float(np.mean([x["mel"] for x in window]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain", type=int, default=400, help="steps of the model the legs fine-tune")
    parser.add_argument("--steps", type=int, default=150, help="steps per leg (the one run takes twice as many)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pool_pack = synthetic_pack()
    from hificodec.data.device_pool import DevicePool

    pool = DevicePool(pool_pack, "cpu")
    held = torch.from_numpy(synthetic_pack(seconds=4.0, clips=4, seed=99).audio.astype(np.float32) / 32768)
    held_out = held[: 4 * 6400].reshape(4, 1, 6400)
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as root:
        for seed in seeds:
            t = time.perf_counter()
            start = pretrain(args.pretrain, seed, pool, Path(root) / f"pretrained-{seed}")
            print(f"pretrained, seed {seed}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
            for name in CONFIGS:
                t = time.perf_counter()
                with tempfile.TemporaryDirectory() as work:
                    results.setdefault(name, []).append(
                        run_config(name, args.steps, seed, pool, held_out, start, Path(work)))
                print(f"{name}, seed {seed}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    keys = list(results[CONFIGS[0]][0])
    print(f"| run ({len(seeds)} seeds, {args.pretrain} steps pretrained, then {args.steps} + {args.steps}) | "
          + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    table = {}
    for name in CONFIGS:
        means = {k: float(np.mean([r[k] for r in results[name]])) for k in keys}
        table[name] = {"mean": means, "per_seed": results[name]}
        print(f"| {name} | " + " | ".join(f"{means[k]:.4f}" for k in keys) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1), encoding="utf-8")
    from _common import emit

    emit("leg_resume", {"seeds": seeds, "pretrain": args.pretrain, "steps": args.steps,
                        **{name: table[name]["mean"] for name in CONFIGS}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
