"""Training speed on this CPU: steps/s and peak memory per recipe and discriminator, plus the
MS-STFT discriminator's cost against a reference layout measured in the same run.

    python bench/train_speed.py [--steps 2] [--threads 1] [--quick] [--compile]

Every configuration runs in its own process (peak RSS is per process) at batch 8 x 1 s, 16 kHz,
on synthetic audio (speed does not depend on the data): one warm-up step, then `--steps` timed.
`--compile` measures instead the shipped model's architecture (recipe hificodec-16k-exc, generator
only) eager and under `train.compile=true` (torch.compile; the compile time is reported separately).
`--leg` measures the GPU leg's recipe (hificodec-16k-gpu-leg: the shipped architecture with its GAN) at
batch 8 two ways on this CPU, data read included: from files through the DataLoader (the eager CPU
trainer) and from a `DevicePool` with the device-side step (what a leg runs; docs/gpu.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a tokenize.py that would shadow the standard library's (torch imports it): look in
# bench/ last
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p not in (_HERE, "")] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _common import emit, time_train_steps  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"

PAPER_MPD = "{mpd: {periods: [2, 3, 5, 7, 11], channels: [32, 128, 512, 1024, 1024]}}"
PAPER_MSD = "{msd: {scales: 3, channels: 128}}"
PAPER_MSSTFT = "{msstft: {n_ffts: [1024, 2048, 512, 256, 128], filters: 32}}"
SLIM_MSSTFT = "{msstft: {n_ffts: [1024, 512, 256], filters: 16}}"
VARIANTS = {
    "generator only": "{}",
    "+ MPD (paper)": PAPER_MPD,
    "+ MSD (paper)": PAPER_MSD,
    "+ MS-STFT 32x5 (paper)": PAPER_MSSTFT,
    "+ MS-STFT 16x3 (slim)": SLIM_MSSTFT,
}
RECIPE_NAMES = ["ablations/small-cpu", "paper/hificodec-16k-320d"]
COMPILE_RECIPE = "hificodec-16k/5-excitation"
LEG_RECIPE = "hificodec-16k/gpu-leg"


def make_data(folder: Path, n: int = 16) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        t = np.arange(32000) / 16000
        x = 0.2 * np.sin(2 * np.pi * (100 + 20 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(folder / f"clip{i:02d}.wav", x.astype(np.float32), 16000)


def run_one(recipe_name: str, discriminators: str, data: str, steps: int, compile_model: bool = False) -> dict:
    """Child process: time `steps` training steps after one warm-up step."""
    from hificodec.train import Trainer, load_recipe

    recipe = load_recipe(
        RECIPES / f"{recipe_name}.yaml",
        [f"discriminators={discriminators}", "losses.adversarial.start_step=0", "data.batch_size=8",
         "data.segment_seconds=1.0", "train.progress=false", "data.num_workers=0", "train.init_from=null",
         f"train.compile={str(compile_model).lower()}"],
    )
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(recipe, data, run_dir)
        warmup, times = time_train_steps(trainer, steps)
    params_g = sum(p.numel() for p in trainer.model.parameters())
    params_d = sum(p.numel() for p in trainer.disc.parameters()) if trainer.disc is not None else 0
    return {
        "s_per_step": float(np.median(times)),
        "warmup_s": warmup,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params_g_m": params_g / 1e6,
        "params_d_m": params_d / 1e6,
    }


def run_leg_mode(mode: str, data: str, steps: int) -> dict:
    """Child process: the leg recipe fed from files ("files") or from a pool ("pool"), batch fetch timed too."""
    from hificodec.data.device_pack import PackAudio
    from hificodec.data.device_pool import DevicePool
    from hificodec.train import Trainer, load_recipe

    recipe = load_recipe(RECIPES / f"{LEG_RECIPE}.yaml", [
        "data.batch_size=8", "train.progress=false", "train.init_from=null", "train.device=cpu"])
    source: str | DevicePool = data
    if mode == "pool":
        clips = [sf.read(f, dtype="int16")[0] for f in sorted(Path(data).glob("*.wav"))]
        lengths = np.array([c.size for c in clips])
        pack = PackAudio(np.concatenate(clips), np.cumsum(lengths) - lengths, lengths, ["x"] * len(clips), 16000)
        source = DevicePool(pack, "cpu")
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(recipe, source, run_dir)
        batches = trainer._batches()
        trainer.train_step(next(batches))
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            result = trainer.train_step(next(batches))
            result.losses  # noqa: B018 - wait for the step (the device-side path defers it)
            times.append(time.perf_counter() - t0)
    return {"s_per_step": float(np.median(times))}


def leg_comparison(data: str, args: argparse.Namespace, env: dict) -> dict:
    runs: dict = {}
    for mode in ("files", "pool"):
        cmd = [sys.executable, __file__, "--leg-one", mode, data, "--steps", str(args.steps), "--threads",
               str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT / "bench")
        if proc.returncode != 0:
            runs[mode] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{LEG_RECIPE} {mode}: failed: {runs[mode]}")
            return {"recipe": LEG_RECIPE, **runs}
        runs[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    ratio = runs["files"]["s_per_step"] / runs["pool"]["s_per_step"]
    print(f"{LEG_RECIPE} at batch 8, {args.threads} thread(s): eager trainer from files "
          f"{1 / runs['files']['s_per_step']:.2f} steps/s, leg path (DevicePool) "
          f"{1 / runs['pool']['s_per_step']:.2f} steps/s ({ratio:.2f}x)")
    return {"recipe": LEG_RECIPE, **runs, "speedup": ratio}


# ---- MS-STFT: reference layout vs ours -------------------------------------------------------


def msstft_comparison(steps: int) -> dict:
    """One discriminator update + one generator-side pass through the paper-size MS-STFT.

    reference: what a straightforward port of Encodec's discriminator does: separate passes over
    real and fake, real/imag concatenated into a new tensor, out-of-place activations, and the
    generator side run with discriminator weight gradients enabled (then discarded).
    ours: the trainer's layout (hificodec.train.discriminators.msstft + Trainer.train_step).
    """
    from hificodec.train.discriminators import MultiScaleSTFTDiscriminator
    from hificodec.train.losses import hinge_discriminator_loss, hinge_generator_loss

    torch.manual_seed(0)
    disc = MultiScaleSTFTDiscriminator(filters=32)
    real = 0.1 * torch.randn(8, 1, 16000)
    fake_leaf = (0.1 * torch.randn(8, 1, 16000)).requires_grad_()

    def reference_forward(x):
        logits = []
        for d in disc.discriminators:
            spec = torch.stft(x[:, 0], d.n_fft, d.hop_length, d.win_length, window=torch.hann_window(d.win_length),
                              center=False, normalized=True, return_complex=True)
            z = torch.cat([spec.real[:, None], spec.imag[:, None]], dim=1).permute(0, 1, 3, 2)
            for conv in d.convs:
                z = F.leaky_relu(conv(z), d.slope)
            logits.append(d.conv_post(z).flatten(1))
        return logits

    def reference_step():
        disc.requires_grad_(True)
        loss_d = hinge_discriminator_loss(reference_forward(real), reference_forward(fake_leaf.detach()))
        loss_d.backward()
        reference_forward(real)
        hinge_generator_loss(reference_forward(fake_leaf)).backward()

    def our_step():
        disc.requires_grad_(True)
        both = disc(torch.cat([real, fake_leaf.detach()]))
        r, f = both.split(8)
        hinge_discriminator_loss(r.logits, f.logits).backward()
        disc.requires_grad_(False)
        with torch.no_grad():
            disc(real)
        hinge_generator_loss(disc(fake_leaf).logits).backward()

    out = {}
    for name, fn in (("reference", reference_step), ("ours", our_step)):
        fn()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = float(np.median(times))
    out["speedup"] = out["reference"] / out["ours"]
    return out


def _child(recipe: str, discriminators: str, data: str, args: argparse.Namespace, env: dict,
           compiled: bool = False) -> dict | str:
    """Run one configuration in its own process: its result, or the last line of its error."""
    cmd = [sys.executable, __file__, "--one", recipe, discriminators, data, "--steps", str(args.steps),
           "--threads", str(args.threads)] + (["--compiled"] if compiled else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT / "bench")
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compile_comparison(data: str, args: argparse.Namespace, env: dict) -> dict:
    """The shipped architecture, generator only, eager vs train.compile=true (each in its own process)."""
    runs = {mode: _child(COMPILE_RECIPE, "{}", data, args, env, compiled=mode == "compiled")
            for mode in ("eager", "compiled")}
    failed = {mode: r for mode, r in runs.items() if isinstance(r, str)}
    if failed:
        print(f"{COMPILE_RECIPE}: failed: {failed}")
        return {"recipe": COMPILE_RECIPE, "failed": failed}
    eager, compiled = runs["eager"], runs["compiled"]
    speedup = eager["s_per_step"] / compiled["s_per_step"]
    print(f"{COMPILE_RECIPE} (shipped architecture), generator only: eager {eager['s_per_step']:.2f} s/step, "
          f"train.compile=true {compiled['s_per_step']:.2f} s/step ({speedup:.2f}x faster; "
          f"the first, compiling step took {compiled['warmup_s']:.0f} s vs {eager['warmup_s']:.1f} s)")
    return {"recipe": COMPILE_RECIPE, **runs, "speedup": speedup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="only the small recipe")
    parser.add_argument("--compile", action="store_true",
                        help="instead: the shipped architecture, eager vs train.compile=true")
    parser.add_argument("--leg", action="store_true",
                        help="instead: the GPU leg's recipe, eager trainer from files vs the leg's pool path")
    parser.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--leg-one", nargs=2, metavar=("MODE", "DATA"), help=argparse.SUPPRESS)
    parser.add_argument("--one", nargs=3, metavar=("RECIPE", "DISCRIMINATORS", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(run_one(*args.one, steps=args.steps, compile_model=args.compiled)))
        return
    if args.leg_one:
        print(json.dumps(run_leg_mode(*args.leg_one, steps=args.steps)))
        return

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE"}
    results: dict = {"threads": args.threads, "torch": torch.__version__, "batch": "8 x 1 s at 16 kHz"}
    names = RECIPE_NAMES[:1] if args.quick else RECIPE_NAMES
    print(f"training speed, {args.threads} thread(s), torch {torch.__version__}, batch 8 x 1 s, "
          f"median of {args.steps} steps after 1 warm-up")
    with tempfile.TemporaryDirectory() as data:
        make_data(Path(data))
        if args.compile:
            results["compile"] = compile_comparison(data, args, env)
            emit("train_speed", results)
            return
        if args.leg:
            results["leg"] = leg_comparison(data, args, env)
            emit("train_speed", results)
            return
        print(f"{'recipe':26s} {'discriminators':24s} {'s/step':>8s} {'steps/s':>8s} {'x gen-only':>10s} "
              f"{'peak RSS MB':>11s} {'G/D params M':>13s}")
        for recipe in names:
            results[recipe] = {}
            base = None
            for label, discs in VARIANTS.items():
                r = _child(recipe, discs, data, args, env)
                if isinstance(r, str):
                    print(f"{recipe:26s} {label:24s} failed: {r}")
                    continue
                base = base or r["s_per_step"]
                r["x_generator_only"] = r["s_per_step"] / base
                results[recipe][label] = r
                print(f"{recipe:26s} {label:24s} {r['s_per_step']:8.2f} {1 / r['s_per_step']:8.3f} "
                      f"{r['x_generator_only']:10.2f} {r['peak_rss_mb']:11.0f} "
                      f"{r['params_g_m']:6.1f}/{r['params_d_m']:<6.1f}", flush=True)
    cmp = msstft_comparison(args.steps)
    results["msstft_layout"] = cmp
    print(f"\nMS-STFT 32x5, D update + G-side pass, batch 8 x 1 s: reference layout {cmp['reference']:.2f} s, "
          f"ours {cmp['ours']:.2f} s ({cmp['speedup']:.2f}x faster)")
    emit("train_speed", results)


if __name__ == "__main__":
    main()
