"""A training leg on a borrowed accelerator: one command, a hard time limit, nothing lost.

The leg folder (`scripts/gpu_leg.py prepare`) holds `leg.json` (the recipe, its overrides, the leg
number, the candidate batch sizes, the compile policy), `pack/` (a device pack: `data.device_pack`),
optionally `wheels/` for the GPU image and `leg-state.safetensors` (what an earlier leg left: the
discriminator, Adam's compact moments, the schedule's position; `train.leg_state`). On the device,
`run_leg` prints the environment, runs a self-check of at most a minute, decodes the pack onto the
device, resumes the carried state, times each candidate batch size the device's memory holds and takes
the one that moves the most audio per second (learning rate by `BatchScaling`), compiles the step when
the time left can pay for it (`train.compiled`: checked against the eager step, eager again on any
failure), then trains until its budget is spent, writing an fp16 sharded export with its leg state into
OUT every `train.export_every_minutes` (atomically: a leg killed at its time limit still returns its
last export) and the training log next to it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
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
from .compiled import PARTS, default_mode, synchronize, try_compiled
from .leg_state import STATE_FILE, LegCounters, fp16_weights_digest, read_leg_state, write_leg_state
from .trainer import Trainer

log = logging.getLogger(__name__)

LEG_FILE = "leg.json"
PACK_DIR = "pack"
EXPORT_DIR = "export"
LOG_FILE = "log.jsonl"
# bf16 dense matrix rate measured on this workplace's H200s (788 TFLOP/s): the utilisation's denominator
H200_PEAK_FLOPS = 790e12
# what a leg assumes of torch.compile before trying it (docs/gpu.md): a cold compile of the step's graphs on
# the GPU machine (no cache there) and the speed-up of a launch-bound step; it tries when the time saved over
# what is left of the leg would exceed the compile
COMPILE_ESTIMATE_S = 150.0
COMPILE_EXPECTED_SPEEDUP = 2.0


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
    compile_policy: str | None = None,
) -> dict[str, Any]:
    """Run the leg; returns its summary (also the last line of OUT/log.jsonl). `compile_policy` (auto, on,
    off) overrides the prepared one."""
    from ..data.device_pack import read_device_pack
    from ..data.device_pool import DevicePool
    from .recipe import load_recipe

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
        "train.grad_accum_steps=1",  # the leg picks the batch the device holds: one batch per step
    ])
    if recipe.train.init_from and not Path(recipe.train.init_from).is_absolute():
        recipe.train.init_from = str(repo / recipe.train.init_from)
    run = Path(run_dir) if run_dir else Path("/tmp/hificodec-leg-run")
    shutil.rmtree(run, ignore_errors=True)
    trainer = LegTrainer(recipe, pool, run)
    trainer.peak_flops = H200_PEAK_FLOPS if dev.type == "cuda" else None
    trainer.on_export = lambda: _copy_log(run, out, {**summary, "partial": True})  # a killed leg keeps its log

    # the training state an earlier leg returned: discriminator, Adam's moments, the schedule's position
    carried = read_leg_state(leg_dir / leg["state"]) if leg.get("state") else None
    scaling = BatchScaling(trainer, carried.counters.schedule_steps if carried else 0.0)
    if carried is not None:
        summary["resumed"] = resume(trainer, carried)
        _say("resumed", summary["resumed"])
    previous = carried.counters if carried else LegCounters()
    trainer.counters = lambda: LegCounters(
        schedule_steps=scaling.position(), base_batch=scaling.base_batch, clips=previous.clips + scaling.clips(),
        legs=[*previous.legs, *([leg["leg"]] if leg.get("leg") is not None else [])],
    )
    scaling.use(scaling.base_batch)

    # smoke: the first steps (cuDNN autotuning, allocator warm-up), one step under the FLOP counter, then a
    # timed stretch per candidate batch size; the leg trains at the one that moves the most audio per second
    batches = trainer._batches()
    _reset_peak_memory(dev)
    for _ in range(3):
        trainer.train_step(next(batches))
    memory = _memory_use(dev, scaling.base_batch)
    flops_at_base = None
    try:
        flops_at_base = count_flops(lambda: trainer.train_step(next(batches)))
    except Exception as e:  # the utilisation is a report, not a reason to lose the lease
        _say("flop count failed", f"{type(e).__name__}: {e}")

    def use_batch(batch: int) -> None:
        scaling.use(batch)
        trainer.flops_per_step = flops_at_base * batch / scaling.base_batch if flops_at_base else None  # linear

    trials: list[dict[str, Any]] = []
    for batch in sorted({int(b) for b in leg.get("batch_candidates") or [scaling.base_batch]}):
        need = memory.need_gib(batch) if memory else None
        if memory and need is not None and need > memory.usable_gib:
            trials.append({"batch": batch, "skipped": f"needs ~{need:.1f} GiB of {memory.usable_gib:.1f} usable"})
            _say("smoke", trials[-1])
            continue
        use_batch(batch)
        try:
            trial = _smoke(trainer, dev, smoke_steps)
        except torch.cuda.OutOfMemoryError:
            _free(dev)
            trial = {"batch": batch, "skipped": "out of memory"}
        trial["audio_s_per_s"] = round(trial.get("clips_per_s", 0.0) * trainer.segment_options.segment_samples
                                       / trainer.sample_rate, 1)
        if need is not None:
            trial["estimated_gib"] = round(need, 1)
        trials.append(trial)
        _say("smoke", trial)
        timed = [x for x in trials if "clips_per_s" in x]
        if timed and trial.get("clips_per_s", 0.0) < max(x["clips_per_s"] for x in timed):
            break  # past the size that moves the most audio: larger ones will not do better
    timed = [x for x in trials if "clips_per_s" in x]
    if not timed:
        raise HificodecError(f"no candidate batch size ran: {trials}")
    best = max(timed, key=lambda r: r["clips_per_s"])
    use_batch(best["batch"])
    summary["smoke"] = {**best, "trials": trials, "memory": memory.report() if memory else None,
                        "lr_rule": scaling.describe()}
    summary["compile"] = _compile_phase(trainer, dev, leg, compile_policy, best, smoke_steps,
                                        left_s=minutes * 60 - (time.perf_counter() - started) - margin_minutes * 60)
    trainer.export(out / EXPORT_DIR)  # something to bring back, whatever happens next

    # train for what is left, keeping a margin for the final checkpoint and export
    left = minutes - (time.perf_counter() - started) / 60 - margin_minutes
    if left <= 0:
        raise HificodecError(f"no time left to train ({minutes} minutes, {left + margin_minutes:.2f} left after the "
                             "smoke pass)")
    trainer.recipe.train.max_minutes = left
    first_step, first_clips = scaling.steps(), scaling.clips()
    t = time.perf_counter()
    try:
        trainer.fit(max_steps=10**9)
    finally:
        train_s = time.perf_counter() - t
        steps = scaling.steps() - first_step
        clip_s = trainer.segment_options.segment_samples / trainer.sample_rate
        summary["train"] = {
            "steps": scaling.steps(), "steps_this_stretch": steps, "seconds": round(train_s, 1),
            "bad_steps": trainer.state.bad_steps, "steps_per_s": round(steps / max(train_s, 1e-9), 2),
            "batch": trainer.recipe.data.batch_size,
            "audio_s_per_s": round((scaling.clips() - first_clips) * clip_s / max(train_s, 1e-9), 1),
            "audio_hours": round(scaling.clips() * clip_s / 3600, 2), "compiled": bool(summary["compile"].get("used")),
            "lr": trainer.opt_g.param_groups[0]["lr"], "schedule_steps": round(scaling.position(), 1),
        }
        _payback(summary, train_s)
        summary["minutes"] = round((time.perf_counter() - started) / 60, 2)
        _say("train", summary["train"])
        _copy_log(run, out, summary)
    return summary


def resume(trainer: Any, state: Any) -> dict[str, Any]:
    """Give a new trainer what an earlier leg kept (`leg_state.LegState`): its discriminator weights and the
    moments of both optimizers. The schedule's position goes to `BatchScaling`."""
    from ..checkpoint import load_state_into

    if trainer.disc is not None and state.discriminator_weights():
        load_state_into(trainer.disc, state.discriminator_weights(), str(state.path))
    return {"schedule_steps": round(state.counters.schedule_steps, 1), "legs": state.counters.legs,
            "clips": state.counters.clips,
            "generator": state.restore("generator", trainer.opt_g, trainer.model),
            "discriminator": state.restore("discriminator", trainer.opt_d, trainer.disc)}


class LegTrainer(Trainer):
    """The trainer with a leg's export: the generator (float16 shards; its moving average with
    `train.ema_decay`, whose weights the next leg then starts from with the live weights' moments) and
    `leg-state.safetensors` (the discriminator, Adam's compact moments, the counters) in one folder with
    one digest: 6 files for the shipped model, 8 with the log and the console, what the device tool
    returns."""

    counters: Callable[[], LegCounters] = LegCounters

    def export(self, directory: str | Path) -> Path | None:
        from ..checkpoint import read_digest, write_digest, write_model_files
        from ..files import atomic_directory
        from ..releases import weights_digest

        cfg = self.recipe.train
        half = cfg.export_dtype == "float16"
        generator = getattr(self, "generator_for_use", self.model)  # the moving average, with train.ema_decay
        with atomic_directory(directory) as tmp:
            write_model_files(generator, tmp, dtype=torch.float16 if half else None, shard_mib=cfg.export_shard_mib)
            digest = fp16_weights_digest(generator) if half else weights_digest(generator.state_dict())
            write_leg_state(
                tmp / STATE_FILE, generator_digest=digest, counters=self.counters(),
                optimizers=[("generator", self.opt_g, self.model), ("discriminator", self.opt_d, self.disc)],
                discriminator=self.disc, discriminators=self.recipe.discriminators,
            )
            write_digest(tmp, [tmp / name for name in (read_digest(tmp) or {})] + [tmp / STATE_FILE])
        self._append_log({"kind": "export", "step": self.state.step, "path": str(directory)})
        if self.on_export is not None:
            self.on_export()
        return Path(directory)


class BatchScaling:
    """The learning-rate rule for a batch other than the recipe's, and the schedule's position across sizes.

    At k = batch / recipe batch: Adam's learning rate x sqrt(k) (the square-root scaling rule for adaptive
    optimisers: Malladi, Lyu, Panigrahi & Arora 2022, "On the SDEs and Scaling Rules for Adaptive Gradient
    Algorithms", NeurIPS; their rule also moves 1 - beta by k, which beta1 0.8 cannot follow past k = 5,
    so the betas stay); a per-step schedule decays gamma^k per step and warms up over warmup_steps / k
    steps, the same per clip seen as at the recipe's batch. The position is kept in steps at the recipe's
    batch (`LegCounters.schedule_steps`), so a leg can change size (the smoke pass does) or carry on from an
    earlier leg at another size and still follow one schedule."""

    def __init__(self, trainer: Any, position: float = 0.0) -> None:
        r = trainer.recipe
        self.trainer = trainer
        self.base_batch = int(r.data.batch_size)
        self.lr = (r.generator_optim.lr, r.discriminator_optim.lr)
        self.gamma, self.warmup, self.per = r.schedule.gamma, r.schedule.warmup_steps, r.schedule.per
        self.batch = self.base_batch
        self._position, self._step = float(position), trainer.state.step
        self._steps_before, self._clips_before = 0, 0

    def _since(self) -> int:
        return self.trainer.state.step - self._step

    def position(self) -> float:
        return self._position + self._since() * self.batch / self.base_batch

    def steps(self) -> int:
        """Training steps taken since this object was made (at any size)."""
        return self._steps_before + self._since()

    def clips(self) -> int:
        return self._clips_before + self._since() * self.batch

    def factor(self, batch: int) -> float:
        return batch / self.base_batch

    def use(self, batch: int) -> None:
        position = self.position()
        self._steps_before, self._clips_before = self.steps(), self.clips()
        k = self.factor(batch)
        r = self.trainer.recipe
        r.data.batch_size = int(batch)
        r.generator_optim.lr, r.discriminator_optim.lr = (lr * math.sqrt(k) for lr in self.lr)
        if self.per == "step":
            r.schedule.gamma = self.gamma**k
            r.schedule.warmup_steps = self.warmup / k  # type: ignore[assignment]  # a fraction is fine
        self.trainer.state.step = int(round(position / k))
        self._position, self._step, self.batch = position, self.trainer.state.step, int(batch)

    def describe(self) -> dict[str, Any]:
        k = self.factor(self.batch)
        r = self.trainer.recipe
        return {"rule": "lr x sqrt(batch / recipe batch); per-step decay gamma^k, warm-up / k",
                "recipe_batch": self.base_batch, "batch": self.batch, "lr": r.generator_optim.lr,
                "lr_disc": r.discriminator_optim.lr, "gamma": r.schedule.gamma,
                "warmup_steps": round(float(r.schedule.warmup_steps), 1), "k": k}


class _Memory:
    """The device memory one step takes, from a step at the recipe's batch: what stays (weights, moments,
    the pool) plus what grows with the batch (activations), against what the device has."""

    def __init__(self, static: int, peak: int, batch: int, total: int) -> None:
        self.static, self.peak, self.batch, self.total = static, peak, batch, total
        self.usable_gib = 0.9 * total / 2**30  # room for the allocator's fragmentation and CUDA graphs

    def need_gib(self, batch: int) -> float:
        per_clip = max(self.peak - self.static, 0) / self.batch
        return (self.static + 1.15 * per_clip * batch) / 2**30

    def report(self) -> dict[str, Any]:
        return {"static_gib": round(self.static / 2**30, 2), "peak_gib_at_recipe_batch": round(self.peak / 2**30, 2),
                "device_gib": round(self.total / 2**30, 1)}


def _memory_use(device: torch.device, batch: int) -> _Memory | None:
    if device.type != "cuda":
        return None
    return _Memory(torch.cuda.memory_allocated(device), torch.cuda.max_memory_allocated(device), batch,
                   torch.cuda.get_device_properties(device).total_memory)


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _compile_phase(
    trainer: Any, device: torch.device, leg: dict[str, Any], policy: str | None, best: dict[str, Any],
    smoke_steps: int, left_s: float,
) -> dict[str, Any]:
    """Compile the step when it can pay for itself in what is left of the leg (or when told to), check it
    against the eager step and keep it only if it passes and is faster (`train.compiled.try_compiled`)."""
    settings = dict(leg.get("compile") or {})
    policy = policy or settings.get("policy", "auto")
    estimate = float(settings.get("estimate_s", COMPILE_ESTIMATE_S))
    speedup = float(settings.get("expected_speedup", COMPILE_EXPECTED_SPEEDUP))
    # compiling pays when the time it saves over the rest of the leg exceeds its own: left x (1 - 1/s) > C
    saves = left_s * (1 - 1 / speedup) if speedup > 1 else 0.0
    report: dict[str, Any] = {"policy": policy, "left_s": round(left_s, 1), "estimate_s": estimate,
                              "expected_speedup": speedup}
    if policy == "off" or (policy == "auto" and saves <= estimate):
        why = "off" if policy == "off" else (f"would save ~{saves:.0f} s of the {left_s:.0f} s left at "
                                             f"{speedup:g}x, less than a ~{estimate:.0f} s compile")
        report.update(used=False, reason=f"not tried: {why}")
        _say("compile", report)
        return report
    t = time.perf_counter()
    mode = settings.get("mode", "default")
    _, result = try_compiled(
        trainer, trainer._batches(), device=device, steps=max(3, smoke_steps), eager_steps_per_s=best["steps_per_s"],
        mode=default_mode(device) if mode == "default" else mode, backend=settings.get("backend", "inductor"),
        parts=tuple(p for p in PARTS if p in (settings.get("parts") or PARTS)), options=settings.get("options"),
        tolerance=settings.get("tolerance"), deadline_s=saves if policy == "auto" else None, say=_say,
    )
    report.update(result, eager_steps_per_s=best["steps_per_s"], spent_s=round(time.perf_counter() - t, 1))
    return report


def _payback(summary: dict[str, Any], train_s: float) -> None:
    """Whether the compile paid for itself: the clips the compiled leg trained since the compile began,
    against what the eager step would have trained in the same time."""
    report, train = summary.get("compile") or {}, summary.get("train") or {}
    if not report.get("used") or not report.get("eager_steps_per_s"):
        return
    compiled = train["steps_this_stretch"]
    eager = report["eager_steps_per_s"] * (train_s + report.get("spent_s", 0.0))
    report["paid_back"] = bool(compiled > eager)
    report["steps_vs_eager"] = round(compiled / max(eager, 1e-9), 3)


def _smoke(trainer: Any, device: torch.device, steps: int, max_seconds: float = 12.0) -> dict[str, Any]:
    """Time `steps` training steps (fewer if they take over `max_seconds`) at the recipe's current batch
    size, after one step for the new shape; on CUDA also the step's peak memory."""
    batches = trainer._batches()
    _reset_peak_memory(device)
    trainer.train_step(next(batches))
    synchronize(device)
    with _count_host_syncs(device) as syncs:  # CUDA's sync debug mode: each waiting call warns
        t = time.perf_counter()
        done = 0
        while done < steps:
            trainer.train_step(next(batches))
            done += 1
            if done % 5 == 0 and time.perf_counter() - t > max_seconds:
                break
        synchronize(device)
        rate = done / (time.perf_counter() - t)
    steps = done
    batch = trainer.recipe.data.batch_size
    trial: dict[str, Any] = {"batch": batch, "steps": steps, "steps_per_s": round(rate, 2),
                             "clips_per_s": round(rate * batch, 1), "host_syncs_per_step": _per_step(syncs, steps)}
    if device.type == "cuda":
        trial["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
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


def _say(what: str, value: Any) -> None:
    print(f"[leg] {what}: {json.dumps(value, default=str)}", flush=True)


def _copy_log(run: Path, out: Path, summary: dict[str, Any]) -> None:
    """The run's log plus the leg summary as its last line, into OUT (atomically)."""
    from ..files import atomic_output

    lines = (run / LOG_FILE).read_text(encoding="utf-8") if (run / LOG_FILE).is_file() else ""
    with atomic_output(out / LOG_FILE) as tmp:
        Path(tmp).write_text(lines + json.dumps(summary, default=str) + "\n", encoding="utf-8")
