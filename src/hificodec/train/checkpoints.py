"""Training checkpoints: everything needed to resume exactly, stored without pickle.

A checkpoint is a directory `RUN_DIR/checkpoints/step-00001000/` holding
    generator.safetensors        model weights and buffers (codebooks)
    generator_ema.safetensors    the generator's exponential moving average (with `train.ema_decay`)
    discriminator.safetensors    discriminator weights (absent for generator-only training)
    optimizers.safetensors       optimizer tensors, flattened: `<opt>.state.<param>.<key>` (float32, or
                                 bfloat16 with `train.optimizer_state_dtype`; absent from checkpoints
                                 older than the last `train.keep_optimizer_last`)
    rng.safetensors              torch CPU/CUDA generator states
    state.json                   step, epoch, sampler position, counters, optimizer param groups,
                                 python and numpy RNG states, best validation loss
    recipe.yaml                  the resolved recipe the run was started with
    checksums.sha256             the SHA-256 of each file above, checked before a resume or an export
It is written into a hidden temp directory and renamed into place, so a crash never leaves a
half-written checkpoint. The last K are kept, plus `best/` (lowest validation mel loss). Weights and
digests are written and read by the functions `hificodec.save`/`load` use (`hificodec.checkpoint`).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ..checkpoint import (
    DIGEST_FILE,
    has_weights,
    load_state,
    load_state_into,
    load_weights,
    save_weights,
    verify_digest,
    write_digest,
)
from ..config import dump_config
from ..errors import CheckpointError
from ..files import atomic_directory

STATE_FILE = "state.json"
PREFIX = "step-"
GENERATOR_FILE = "generator.safetensors"
EMA_FILE = "generator_ema.safetensors"
OPTIMIZER_FILE = "optimizers.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
RECIPE_FILE = "recipe.yaml"


# ---- optimizer state <-> (tensors, json) ------------------------------------------------------


def flatten_optimizer(
    name: str, optimizer: torch.optim.Optimizer, dtype: torch.dtype | None = None
) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state as named tensors plus JSON. `dtype` (e.g. bfloat16) stores the moments smaller;
    step counts stay as they are (bfloat16 counts exactly only to 256), and `load_state_dict` casts
    the moments back to the parameters' dtype."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                t = value.detach().cpu()
                if dtype is not None and key != "step" and t.is_floating_point():
                    t = t.to(dtype)
                tensors[f"{name}.state.{pid}.{key}"] = t.contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(name: str, tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"{name}.state."
    for key, value in tensors.items():
        if key.startswith(prefix):
            pid, field = key[len(prefix) :].split(".", 1)
            state.setdefault(int(pid), {})[field] = value
    for pid, fields in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(fields)
    return {"state": state, "param_groups": meta["param_groups"]}


# ---- RNG -------------------------------------------------------------------------------------


def capture_rng() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    py = random.getstate()
    np_state: Any = np.random.get_state()  # the legacy tuple (typed as tuple | dict)
    meta: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))


# ---- save / load -----------------------------------------------------------------------------


def save_checkpoint(
    run_dir: Path,
    step: int,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module | None,
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
    recipe: dict[str, Any],
    keep_last: int = 3,
    ema: torch.nn.Module | None = None,
    keep_optimizer_last: int | None = None,
    optimizer_dtype: torch.dtype | None = None,
) -> Path:
    """Write a checkpoint atomically, prune all but the last `keep_last`, and drop the optimizer state of
    all but the last `keep_optimizer_last` (None: keep it). Returns its path."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:08d}"
    with atomic_directory(final) as tmp:
        save_weights(generator, tmp / GENERATOR_FILE)
        if ema is not None:
            save_weights(ema, tmp / EMA_FILE)
        if discriminator is not None:
            save_weights(discriminator, tmp / DISCRIMINATOR_FILE)
        opt_tensors: dict[str, torch.Tensor] = {}
        opt_meta = {}
        for name, opt in optimizers.items():
            t, m = flatten_optimizer(name, opt, optimizer_dtype)
            opt_tensors.update(t)
            opt_meta[name] = m
        save_file(opt_tensors, str(tmp / OPTIMIZER_FILE))
        rng_tensors, rng_meta = capture_rng()
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        full_state = {**state, "step": step, "optimizers": opt_meta, "rng": rng_meta}
        (tmp / STATE_FILE).write_text(json.dumps(full_state), encoding="utf-8")
        (tmp / RECIPE_FILE).write_text(dump_config(recipe), encoding="utf-8")
        write_digest(tmp, list(tmp.iterdir()))
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    if keep_optimizer_last is not None:
        for old in list_checkpoints(run_dir)[:-keep_optimizer_last]:
            drop_optimizer_state(old)
    return final


def drop_optimizer_state(checkpoint: Path) -> None:
    """Delete a checkpoint's optimizer tensors (most of its bytes: Adam keeps two moments per weight).

    The digest is rewritten first, so a crash in between leaves an unlisted file, never a listed one
    that is missing. `state.json` keeps the param groups; a resume from here restarts the moments."""
    target = checkpoint / OPTIMIZER_FILE
    if not target.exists():
        return
    write_digest(checkpoint, [p for p in checkpoint.iterdir() if p.name not in (OPTIMIZER_FILE, DIGEST_FILE)])
    target.unlink()


def has_optimizer_state(checkpoint: Path) -> bool:
    return (checkpoint / OPTIMIZER_FILE).is_file()


def mark_best(run_dir: Path, checkpoint: Path, with_optimizer: bool = True) -> Path:
    """Copy a checkpoint to RUN_DIR/checkpoints/best (atomically replaced); `with_optimizer=False`
    leaves out its optimizer state (`best/` is for export, not for resuming)."""
    best = run_dir / "checkpoints" / "best"
    with atomic_directory(best) as tmp:
        shutil.copytree(checkpoint, tmp, dirs_exist_ok=True)
        if not with_optimizer:
            drop_optimizer_state(tmp)
    return best


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def read_state(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: missing or corrupt training state ({e})") from None


def load_modules(
    checkpoint: Path, generator: torch.nn.Module, discriminator: torch.nn.Module | None, ema: bool = False
) -> None:
    """The generator's weights (its EMA with `ema=True`: it must be in the checkpoint), and the
    discriminator's when one is given (it must be in the checkpoint)."""
    load_state_into(generator, load_weights(checkpoint / (EMA_FILE if ema else GENERATOR_FILE)), str(checkpoint))
    if discriminator is not None:
        load_state_into(discriminator, load_weights(checkpoint / DISCRIMINATOR_FILE), str(checkpoint))


def load_checkpoint(
    checkpoint: Path,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module | None,
    optimizers: dict[str, torch.optim.Optimizer],
    restore_random: bool = True,
    ema: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Load weights, optimizer states and (optionally) RNG states; returns the JSON state.

    `ema` receives the generator's EMA where the checkpoint has one (`state["ema_loaded"]` says whether
    it had). A checkpoint whose optimizer state was dropped (`keep_optimizer_last`) leaves the
    optimizers as they are (`state["optimizer_loaded"]` is False)."""
    verify_digest(checkpoint, [checkpoint / STATE_FILE])
    state = read_state(checkpoint)
    load_modules(checkpoint, generator, discriminator)
    state["ema_loaded"] = ema is not None and has_weights(checkpoint / EMA_FILE)
    if ema is not None and state["ema_loaded"]:
        load_state_into(ema, load_weights(checkpoint / EMA_FILE), str(checkpoint / EMA_FILE))
    state["optimizer_loaded"] = has_optimizer_state(checkpoint)
    if not state["optimizer_loaded"]:
        optimizers = {}
    opt_tensors = load_state(checkpoint / OPTIMIZER_FILE) if optimizers else {}
    for name, opt in optimizers.items():
        if name not in state["optimizers"]:
            raise CheckpointError(f"{checkpoint}: no state for optimizer '{name}'")
        opt.load_state_dict(unflatten_optimizer(name, opt_tensors, state["optimizers"][name]))
    if restore_random:
        restore_rng(load_state(checkpoint / "rng.safetensors"), state["rng"])
    return state
