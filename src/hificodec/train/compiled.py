"""Fewer kernel launches per training step: torch.compile of the generator's and the discriminator's
forward passes and of the loss terms, checked against the eager step, with a way back.

The GPU leg's step is bound by kernel launches (thousands of small kernels per step, docs/gpu.md).
Inductor fuses the element-wise work; on CUDA, mode "reduce-overhead" also replays each compiled graph
as a CUDA graph (one launch for the whole graph). A compiled module keeps its parameters, buffers and
state-dict names (`module.forward` is replaced on the instance), so exports and the optimizer are
unaffected, and `CompiledStep.disable` puts the eager forward back.

`try_compiled` is what a leg runs: it snapshots the training state, compiles the parts one at a time
(cheapest first; none is started after its deadline), takes one step eagerly and the same step compiled
from the same state, and compares every loss term and the gradient norm (within `tolerance`:
`TOLERANCE` by the step's precision); it then times the compiled step. Any exception, a difference over
the tolerance, or a compiled step that is not faster restores the snapshot and leaves the trainer
eager: the leg goes on either way.
"""

from __future__ import annotations

import copy
import math
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import torch

#: how far a compiled step's losses may be from the eager step's, relative (plus `ABSOLUTE` for terms near
#: zero). float32: inductor on the CPU measured 2.1e-7 on the tiny recipe's losses (docs/gpu.md); the
#: bound leaves room for other kernels' summation orders. bfloat16 (CUDA autocast): inductor keeps fused
#: intermediates in float32 where eager rounds each op to bf16 (8 bits of mantissa, 4e-3 per rounding);
#: float16 (autocast with a gradient scaler) rounds at 5e-4. Neither measured on a GPU yet.
TOLERANCE = {"float32": 1e-3, "bfloat16": 5e-2, "float16": 2e-2}
ABSOLUTE = 1e-5
PARTS = ("losses", "discriminator", "generator")  # the order they are compiled in: cheapest first


def default_mode(device: torch.device) -> str | None:
    """CUDA graphs where there are launches to save; plain inductor elsewhere."""
    return "reduce-overhead" if device.type == "cuda" else None


class CompiledStep:
    """Swaps a `Trainer`'s generator forward, discriminator forward and loss functions for compiled ones.

    `backend` is a torch.compile backend (a name or a callable); `options` are inductor options (with
    `mode`, they are merged: torch.compile takes one or the other). Random ops run as in eager mode
    (`fallback_random`), so a compiled step draws what the eager one draws (quantizer dropout, codebook
    restarts)."""

    def __init__(
        self, trainer: Any, *, mode: str | None = None, backend: str | Callable = "inductor",
        parts: tuple[str, ...] = PARTS, options: dict[str, Any] | None = None,
    ) -> None:
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown compiled part(s) {sorted(unknown)} (known: {', '.join(PARTS)})")
        self.trainer, self.mode, self.backend, self.parts = trainer, mode, backend, tuple(parts)
        self.cuda_graphs = mode == "reduce-overhead"
        opts: dict[str, Any] = {}
        if backend == "inductor":
            opts["fallback_random"] = True
            if self.cuda_graphs:
                opts["triton.cudagraphs"] = True  # what mode="reduce-overhead" sets
            elif mode == "max-autotune":
                opts.update({"max_autotune": True, "triton.cudagraphs": True})
        opts.update(options or {})
        self._options = opts or None
        self._eager: dict[str, tuple[Any, str, Callable, bool]] = {}  # what each installed function replaced
        self._compiled: dict[str, Callable] = {}
        self._on: list[str] = []
        self.enabled = False

    def _compile(self, fn: Callable) -> Callable:
        return torch.compile(fn, backend=self.backend, dynamic=False, options=self._options)

    def _detached_outputs(self, fn: Callable) -> Callable:
        """CUDA graphs reuse their output memory at the next replay: what the trainer keeps across steps
        (the logged loss values) must be copies."""
        if not self.cuda_graphs:
            return fn

        def call(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            if isinstance(out, dict):
                return {k: v.clone() for k, v in out.items()}
            return out.clone()

        return call

    def enable(self, parts: tuple[str, ...] | None = None) -> CompiledStep:
        """Put the compiled functions of `parts` (default: all of this step's) in place; each is compiled
        when first called, and kept: `disable` and `enable` switch without compiling again."""
        tr = self.trainer
        for part in self.parts if parts is None else parts:
            if part in self._on or part not in self.parts:
                continue
            if part == "generator" and tr.forward_g is tr.model_ddp:  # train.compile compiles it already
                self._install(tr.model, "forward", "generator", tr.model.forward)
            elif part == "discriminator" and tr.disc is not None:
                self._install(tr.disc, "forward", "discriminator", tr.disc.forward)
            elif part == "losses":
                self._install(tr, "loss_terms", "loss_terms", tr.loss_terms, outputs=True)
                self._install(tr, "adv_disc_loss", "adv_disc_loss", tr.adv_disc_loss, outputs=True)
            self._on.append(part)
        if self.cuda_graphs and self._on and "train_step" not in self._eager:
            step = self._eager["train_step"] = (tr, "train_step", tr.train_step, "train_step" in vars(tr))

            def train_step(batch: dict) -> Any:
                torch.compiler.cudagraph_mark_step_begin()  # the last step's graph outputs may be reused now
                return step[2](batch)

            tr.train_step = train_step
        self.enabled = bool(self._on)
        return self

    def _install(self, owner: Any, attribute: str, key: str, eager: Callable, outputs: bool = False) -> None:
        """`owner.attribute` = the compiled `eager` (an instance attribute: a module keeps its class's forward)."""
        if key not in self._compiled:
            fn = self._compile(eager)
            self._compiled[key] = self._detached_outputs(fn) if outputs else fn
        self._eager[key] = (owner, attribute, eager, attribute in vars(owner))
        setattr(owner, attribute, self._compiled[key])

    def disable(self, reset: bool = True) -> None:
        """The eager step again; `reset` also drops the compiled graphs (and their CUDA-graph memory)."""
        for owner, attribute, eager, was_own in self._eager.values():
            if was_own:
                setattr(owner, attribute, eager)
            else:  # a module's forward: back to its class's
                delattr(owner, attribute)
        self._eager.clear()
        self._on.clear()
        self.enabled = False
        if reset:
            self._compiled.clear()
            torch._dynamo.reset()


class Snapshot:
    """A copy of everything a training step changes (weights, buffers, optimizer state, the generator's
    moving average and the gradient scaler where the trainer has them, counters, RNG)."""

    def __init__(self, trainer: Any) -> None:
        self.model = copy.deepcopy(trainer.model.state_dict())
        self.disc = copy.deepcopy(trainer.disc.state_dict()) if trainer.disc is not None else None
        self.opt_g = copy.deepcopy(trainer.opt_g.state_dict())
        self.opt_d = copy.deepcopy(trainer.opt_d.state_dict()) if trainer.opt_d is not None else None
        ema, scaler = getattr(trainer, "ema_model", None), getattr(trainer, "scaler", None)
        self.ema = copy.deepcopy(ema.state_dict()) if ema is not None else None
        self.scaler = copy.deepcopy(scaler.state_dict()) if scaler is not None else None
        self.state = copy.deepcopy(trainer.state)
        self.counters = [None if t is None else t.clone() for t in (trainer._device_bad, trainer._device_bad_streak)]
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def restore(self, trainer: Any) -> None:
        trainer.model.load_state_dict(self.model)
        if self.disc is not None:
            trainer.disc.load_state_dict(self.disc)
        trainer.opt_g.load_state_dict(copy.deepcopy(self.opt_g))
        if self.opt_d is not None:
            trainer.opt_d.load_state_dict(copy.deepcopy(self.opt_d))
        if self.ema is not None:
            trainer.ema_model.load_state_dict(self.ema)
        if self.scaler is not None:
            trainer.scaler.load_state_dict(copy.deepcopy(self.scaler))
        trainer.state = copy.deepcopy(self.state)
        trainer._device_bad, trainer._device_bad_streak = (None if t is None else t.clone() for t in self.counters)
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


def step_difference(eager: dict[str, float], compiled: dict[str, float]) -> tuple[float, str]:
    """The largest |compiled - eager| / (|eager| + ABSOLUTE) over the step's values, and which value it is
    (a value missing on one side, or not finite on one side only, is infinitely far)."""
    worst, name = 0.0, ""
    for key in sorted(set(eager) | set(compiled)):
        a, b = eager.get(key), compiled.get(key)
        if a is None or b is None or math.isfinite(a) != math.isfinite(b):
            return math.inf, key
        if not math.isfinite(a):
            continue
        diff = abs(a - b) / (abs(a) + ABSOLUTE)
        if diff > worst:
            worst, name = diff, key
    return worst, name


def try_compiled(
    trainer: Any, batches: Iterator[dict], *, device: torch.device, steps: int = 20, eager_steps_per_s: float | None,
    mode: str | None = None, backend: str | Callable = "inductor", parts: tuple[str, ...] = PARTS,
    options: dict[str, Any] | None = None, tolerance: float | None = None, warmup_steps: int = 2,
    deadline_s: float | None = None, say: Callable[[str, Any], None] | None = None,
) -> tuple[CompiledStep | None, dict[str, Any]]:
    """Compile the trainer's step, check it against the eager step, time it; keep it only if it passes
    and is faster than `eager_steps_per_s` (when given).

    The parts are compiled one at a time, each by a training step, in the order given (cheapest first:
    losses, discriminator, generator); once `deadline_s` has passed no further part is started, and the
    step goes on with those compiled so far. Then one step is taken eagerly and the same step compiled from
    the same state, and their losses compared. Returns (the compiled step or None, a report: compile seconds
    per part, the difference, steps/s, whether it is used and why). Never raises for the step's sake: any
    failure restores the state from before the attempt and leaves the trainer eager."""
    dtype = getattr(trainer, "amp_dtype", torch.bfloat16 if getattr(trainer, "amp", False) else None)
    precision = "bfloat16" if dtype == torch.bfloat16 else "float16" if dtype == torch.float16 else "float32"
    limit = TOLERANCE[precision] if tolerance is None else tolerance
    report: dict[str, Any] = {"mode": mode, "backend": getattr(backend, "__name__", backend), "parts": [],
                              "precision": precision, "tolerance": limit, "used": False, "compile_s_by_part": {}}
    before = Snapshot(trainer)
    compiled: CompiledStep | None = None
    started = time.perf_counter()
    try:
        compiled = CompiledStep(trainer, mode=mode, backend=backend, parts=parts, options=options)
        for part in parts:
            if deadline_s is not None and time.perf_counter() - started > deadline_s:
                report.setdefault("not_compiled", []).append(part)
                continue
            compiled.enable((part,))
            t = time.perf_counter()
            trainer.train_step(next(batches))  # compiles the part (forward, then backward)
            synchronize(device)
            report["compile_s_by_part"][part] = round(time.perf_counter() - t, 2)
            report["parts"].append(part)
        if not report["parts"]:
            raise TimeoutError(f"no part compiled within {deadline_s:.0f} s")
        # the check: one step eager and the same step compiled, from the same state
        batch = next(batches)
        checkpoint = Snapshot(trainer)
        compiled.disable(reset=False)
        eager = trainer.train_step(batch).losses
        checkpoint.restore(trainer)
        compiled.enable(tuple(report["parts"]))
        compiled_values = trainer.train_step(batch).losses
        diff, worst = step_difference(eager, compiled_values)
        report.update(difference=diff, worst=worst)
        if not diff <= limit:
            raise CompiledStepMismatch(f"compiled step differs from the eager step by {diff:.3g} in '{worst}' "
                                       f"(tolerance {limit:g})")
        for _ in range(warmup_steps):  # CUDA graphs are recorded on the first calls after the compile
            trainer.train_step(next(batches))
        synchronize(device)
        report["compile_s"] = round(time.perf_counter() - started, 2)
        t = time.perf_counter()
        for _ in range(steps):
            result = trainer.train_step(next(batches))
        synchronize(device)
        rate = steps / (time.perf_counter() - t)
        values = result.losses if steps else {}
        if values and not all(math.isfinite(v) for k, v in values.items() if k != "grad_norm"):
            raise CompiledStepMismatch(f"compiled steps gave non-finite losses: {values}")
        report["steps_per_s"] = round(rate, 3)
        if eager_steps_per_s:
            report["speedup"] = round(rate / eager_steps_per_s, 3)
        if eager_steps_per_s and rate <= eager_steps_per_s:
            compiled.disable()
            report["reason"] = "not faster than the eager step"
            return None, report
        report["used"] = True
        return compiled, report
    except Exception as e:  # whatever broke, the leg goes on eager
        if compiled is not None:
            try:
                compiled.disable()
            except Exception:  # noqa: BLE001 - already on the way back
                pass
        before.restore(trainer)
        report.update(reason=f"{type(e).__name__}: {str(e)[:500]}", where=traceback.format_exc(limit=-3)[-1500:])
        return None, report
    finally:
        if say is not None:
            say("compile", {k: v for k, v in report.items() if k != "where"})


class CompiledStepMismatch(RuntimeError):
    """The compiled step does not compute what the eager step does."""


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so a timer reads what it ran."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
