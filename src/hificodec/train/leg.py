"""A training leg on a borrowed accelerator: one command, a hard time limit, nothing lost.

The leg folder (`scripts/gpu_leg.py prepare`) holds `leg.json` (the recipe, its overrides, the leg
number), `pack/` (a device pack: `data.device_pack`) and optionally `wheels/` for the GPU image. On
the device, `run_leg` prints the environment, runs a self-check of at most a minute, decodes the pack
onto the device, runs a smoke pass (steps/s, FLOPs per step), then trains until its budget is spent,
writing an fp16 sharded export into OUT every `train.export_every_minutes` (atomically: a leg killed
at its time limit still returns its last export) and the training log next to it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import shutil
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import HificodecError

log = logging.getLogger(__name__)

LEG_FILE = "leg.json"
PACK_DIR = "pack"
EXPORT_DIR = "export"
LOG_FILE = "log.jsonl"
# bf16 dense matrix rate measured on this workplace's H200s (788 TFLOP/s): the utilisation's denominator
H200_PEAK_FLOPS = 790e12


def read_leg(leg_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((leg_dir / LEG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise HificodecError(f"{leg_dir}: not a prepared leg folder ({e})") from None


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   multiprocessors=props.multi_processor_count)
    return env


def run_leg(
    leg_dir: str | Path, out_dir: str | Path, minutes: float, *, device: str = "cuda", repo: str | Path = ".",
    selfcheck: bool = True, smoke_steps: int = 30, run_dir: str | Path | None = None, margin_minutes: float = 0.5,
) -> dict[str, Any]:
    """Run the leg; returns its summary (also the last line of OUT/log.jsonl)."""
    from ..data.device_pack import read_device_pack
    from ..data.device_pool import DevicePool
    from .recipe import load_recipe
    from .trainer import Trainer

    started = time.perf_counter()
    leg_dir, out, repo = Path(leg_dir), Path(out_dir), Path(repo)
    out.mkdir(parents=True, exist_ok=True)
    leg = read_leg(leg_dir)
    # decode first: the decoder processes are forked before CUDA is initialised in this one
    t = time.perf_counter()
    pack = read_device_pack(leg_dir / PACK_DIR)
    summary: dict[str, Any] = {"kind": "leg", "leg": leg.get("leg"), "recipe": leg["recipe"], "env": environment()}
    _say("environment", summary["env"])
    dev = torch.device(device)
    pool = DevicePool(pack, dev)
    summary["pack"] = {"clips": len(pool), "hours": round(pool.seconds / 3600, 3),
                       "speakers": len(set(pack.speakers)), "decode_s": round(time.perf_counter() - t, 1)}
    _say("pack", summary["pack"])

    if selfcheck:
        summary["selfcheck"] = self_check(pool, dev, repo, leg, budget_s=60.0)

    recipe = load_recipe(repo / leg["recipe"], list(leg.get("overrides", [])) + [
        f"train.export_to={out / EXPORT_DIR}", "train.export_dtype=float16",
        f"train.export_shard_mib={leg.get('shard_mib', 15)}", "train.progress=false",
        f"train.device={device}", "valid.every=1000000000", "train.checkpoint_every=1000000000",
    ])
    if recipe.train.init_from and not Path(recipe.train.init_from).is_absolute():
        recipe.train.init_from = str(repo / recipe.train.init_from)
    run = Path(run_dir) if run_dir else Path("/tmp/hificodec-leg-run")
    shutil.rmtree(run, ignore_errors=True)
    trainer = Trainer(recipe, pool, run)
    trainer.peak_flops = H200_PEAK_FLOPS if dev.type == "cuda" else None
    trainer.on_export = lambda: _copy_log(run, out, {**summary, "partial": True})  # a killed leg keeps its log

    # smoke: the first steps (cuDNN autotuning, allocator warm-up), one step under the FLOP counter, then a
    # timed stretch per candidate batch size; the leg trains at the one that moves the most audio per second
    base_batch = recipe.data.batch_size
    batches = trainer._batches()
    for _ in range(3):
        trainer.train_step(next(batches))
    flops_at_base = None
    try:
        flops_at_base = count_flops(lambda: trainer.train_step(next(batches)))
    except Exception as e:  # the utilisation is a report, not a reason to lose the lease
        _say("flop count failed", f"{type(e).__name__}: {e}")

    def use_batch(batch: int) -> None:
        trainer.recipe.data.batch_size = batch
        trainer.flops_per_step = flops_at_base * batch / base_batch if flops_at_base else None  # linear in batch

    trials = []
    for batch in leg.get("batch_candidates") or [base_batch]:
        use_batch(int(batch))
        trial = _smoke(trainer, dev, smoke_steps)
        trials.append(trial)
        _say("smoke", trial)
    best = max(trials, key=lambda r: r["clips_per_s"])
    use_batch(best["batch"])
    summary["smoke"] = {**best, "trials": trials}
    trainer.export(out / EXPORT_DIR)  # something to bring back, whatever happens next

    # train for what is left, keeping a margin for the final checkpoint and export
    left = minutes - (time.perf_counter() - started) / 60 - margin_minutes
    if left <= 0:
        raise HificodecError(f"no time left to train ({minutes} minutes, {left + margin_minutes:.2f} left after the "
                             "smoke pass)")
    trainer.recipe.train.max_minutes = left
    first_step = trainer.state.step
    t = time.perf_counter()
    try:
        trainer.fit(max_steps=10**9)
    finally:
        train_s = time.perf_counter() - t
        summary["train"] = {
            "steps": trainer.state.step, "steps_this_stretch": trainer.state.step - first_step,
            "seconds": round(train_s, 1), "bad_steps": trainer.state.bad_steps,
            "steps_per_s": round((trainer.state.step - first_step) / max(train_s, 1e-9), 2),
            "batch": trainer.recipe.data.batch_size, "audio_hours": round(
                trainer.state.step * trainer.recipe.data.batch_size * trainer.segment_options.segment_samples
                / trainer.sample_rate / 3600, 2),
        }
        summary["minutes"] = round((time.perf_counter() - started) / 60, 2)
        _say("train", summary["train"])
        _copy_log(run, out, summary)
    return summary


def _smoke(trainer: Any, device: torch.device, steps: int) -> dict[str, Any]:
    """Time `steps` training steps at the recipe's current batch size (after one step for the new shape)."""
    batches = trainer._batches()
    trainer.train_step(next(batches))
    _sync(device)
    with _count_host_syncs(device) as syncs:  # CUDA's sync debug mode: each waiting call warns
        t = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(next(batches))
        _sync(device)
        rate = steps / (time.perf_counter() - t)
    batch = trainer.recipe.data.batch_size
    trial: dict[str, Any] = {"batch": batch, "steps": steps, "steps_per_s": round(rate, 2),
                             "clips_per_s": round(rate * batch, 1), "host_syncs_per_step": _per_step(syncs, steps)}
    if trainer.flops_per_step:
        trial["gflop_per_step"] = round(trainer.flops_per_step / 1e9, 1)
        if trainer.peak_flops:
            trial["mfu"] = round(trainer.flops_per_step * rate / trainer.peak_flops, 4)
    return trial


def self_check(
    pool: Any, device: torch.device, repo: Path, leg: dict[str, Any], budget_s: float = 60.0
) -> dict[str, Any]:
    """Checks that the device computes what the CPU does: each prints PASS/FAIL and never stops the leg
    (the training that follows is what the lease is for); skipped once `budget_s` is spent."""
    from ..checkpoint import load
    from ..chunked import decode_chunked
    from .recipe import load_recipe
    from .tiny_recipes import tiny_recipes
    from .trainer import Trainer

    started = time.perf_counter()
    results: dict[str, Any] = {}

    def check(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        if time.perf_counter() - started > budget_s:
            results[name] = {"status": "skipped (self-check budget spent)"}
        else:
            try:
                results[name] = {"status": "PASS", **fn()}
            except Exception as e:  # a failed check is a finding to report, not a reason to stop
                results[name] = {"status": "FAIL", "error": f"{type(e).__name__}: {e}",
                                 "where": traceback.format_exc(limit=-3)}
        _say(f"selfcheck {name}", results[name])

    model_dir = repo / leg.get("model", "src/hificodec/pretrained/hificodec-16k")
    clip = pool.audio[: 4 * pool.sample_rate].float().div(32768).view(1, 1, -1)

    def codec_matches_cpu() -> dict[str, Any]:
        """float32 on both sides (cuDNN's default TF32 convolutions differ by ~2e-2 on decode; reported)."""
        cpu_model, dev_model = load(model_dir), load(model_dir, device)
        tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        try:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
            with torch.no_grad():
                codes_cpu = cpu_model.encode(clip.cpu())
                codes_dev = dev_model.encode(clip.to(device))
                same = float((codes_cpu == codes_dev.cpu()).float().mean())
                wav_cpu = cpu_model.decode(codes_cpu)
                wav_dev = dev_model.decode(codes_cpu.to(device)).cpu()
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
            with torch.no_grad():
                wav_tf32 = dev_model.decode(codes_cpu.to(device)).cpu()
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
        err = float((wav_cpu - wav_dev).norm() / wav_cpu.norm().clamp(min=1e-9))
        err_tf32 = float((wav_cpu - wav_tf32).norm() / wav_cpu.norm().clamp(min=1e-9))
        if same < 0.99 or err > 1e-3:
            raise AssertionError(f"codes equal {same:.4f}, decode relative error {err:.2e}")
        return {"codes_equal": round(same, 5), "decode_rel_error": err, "decode_rel_error_tf32": err_tf32}

    def chunked_matches_whole() -> dict[str, Any]:
        model = load(model_dir, device)
        with torch.no_grad():
            codes = model.encode(clip.to(device))
            whole = model.decode(codes)
            chunked = decode_chunked(model, codes, chunk_frames=50).to(device).reshape(-1)
        whole = whole.reshape(-1)[: chunked.numel()]
        err = float((chunked[: whole.numel()] - whole).norm() / whole.norm().clamp(min=1e-9))
        if err > 1e-2:
            raise AssertionError(f"chunked decode differs from the whole-file decode: relative error {err:.2e}")
        return {"rel_error": err}

    def tiny_step(name: str) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            recipe = load_recipe(tiny_recipes()[name], [f"train.device={device}"])
            with tempfile.TemporaryDirectory(prefix=f"leg-{name}-") as run:
                trainer = Trainer(recipe, pool, run)
                batches = trainer._batches()
                result = trainer.train_step(next(batches))
                result = trainer.train_step(next(batches))
            losses = result.losses
            if result.skipped or not all(v == v for v in losses.values()):
                raise AssertionError(f"non-finite step: {losses}")
            return {"amp": trainer.amp, "total": round(losses.get("total", float("nan")), 4)}
        return run

    check("codec_matches_cpu", codec_matches_cpu)
    check("chunked_decode", chunked_matches_whole)
    for name in tiny_recipes():
        check(f"bf16_step_tiny-{name}", tiny_step(name))
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def count_flops(step: Callable[[], Any]) -> float:
    """Floating-point operations of one call (matrix products and convolutions, forward and backward,
    as torch's FlopCounterMode counts them; FFTs and element-wise work are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


@contextlib.contextmanager
def _count_host_syncs(device: torch.device) -> Iterator[list[Any]]:
    """Collect the warnings of `torch.cuda.set_sync_debug_mode("warn")` (empty on other devices)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            yield caught
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode(0)


def _per_step(caught: list[Any], steps: int) -> float | None:
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    return len(syncs) / steps if steps else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _say(what: str, value: Any) -> None:
    print(f"[leg] {what}: {json.dumps(value, default=str)}", flush=True)


def _copy_log(run: Path, out: Path, summary: dict[str, Any]) -> None:
    """The run's log plus the leg summary as its last line, into OUT (atomically)."""
    from ..files import atomic_output

    lines = (run / LOG_FILE).read_text(encoding="utf-8") if (run / LOG_FILE).is_file() else ""
    with atomic_output(out / LOG_FILE) as tmp:
        Path(tmp).write_text(lines + json.dumps(summary, default=str) + "\n", encoding="utf-8")
