"""Training checkpoints: everything needed to resume exactly, stored without pickle.

A checkpoint is a directory `RUN_DIR/checkpoints/step-00001000/` holding
    generator.safetensors        model weights and buffers (codebooks)
    discriminator.safetensors    discriminator weights (absent for generator-only training)
    optimizers.safetensors       optimizer tensors, flattened: `<opt>.state.<param>.<key>`
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

from ..checkpoint import load_state, load_state_into, load_weights, save_weights, verify_digest, write_digest
from ..config import dump_config
from ..errors import CheckpointError
from ..files import atomic_directory

STATE_FILE = "state.json"
PREFIX = "step-"
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
RECIPE_FILE = "recipe.yaml"


# ---- optimizer state <-> (tensors, json) ------------------------------------------------------


def flatten_optimizer(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}.state.{pid}.{key}"] = value.detach().cpu().contiguous()
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
) -> Path:
    """Write a checkpoint atomically and prune all but the last `keep_last`. Returns its path."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:08d}"
    with atomic_directory(final) as tmp:
        save_weights(generator, tmp / GENERATOR_FILE)
        if discriminator is not None:
            save_weights(discriminator, tmp / DISCRIMINATOR_FILE)
        opt_tensors: dict[str, torch.Tensor] = {}
        opt_meta = {}
        for name, opt in optimizers.items():
            t, m = flatten_optimizer(name, opt)
            opt_tensors.update(t)
            opt_meta[name] = m
        save_file(opt_tensors, str(tmp / "optimizers.safetensors"))
        rng_tensors, rng_meta = capture_rng()
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        full_state = {**state, "step": step, "optimizers": opt_meta, "rng": rng_meta}
        (tmp / STATE_FILE).write_text(json.dumps(full_state), encoding="utf-8")
        (tmp / RECIPE_FILE).write_text(dump_config(recipe), encoding="utf-8")
        write_digest(tmp, list(tmp.iterdir()))
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def mark_best(run_dir: Path, checkpoint: Path) -> Path:
    """Copy a checkpoint to RUN_DIR/checkpoints/best (atomically replaced)."""
    best = run_dir / "checkpoints" / "best"
    with atomic_directory(best) as tmp:
        shutil.copytree(checkpoint, tmp, dirs_exist_ok=True)
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


def load_modules(checkpoint: Path, generator: torch.nn.Module, discriminator: torch.nn.Module | None) -> None:
    """The generator's weights, and the discriminator's when one is given (it must be in the checkpoint)."""
    load_state_into(generator, load_weights(checkpoint / GENERATOR_FILE), str(checkpoint))
    if discriminator is not None:
        load_state_into(discriminator, load_weights(checkpoint / DISCRIMINATOR_FILE), str(checkpoint))


def load_checkpoint(
    checkpoint: Path,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module | None,
    optimizers: dict[str, torch.optim.Optimizer],
    restore_random: bool = True,
) -> dict[str, Any]:
    """Load weights, optimizer states and (optionally) RNG states; returns the JSON state."""
    verify_digest(checkpoint, [checkpoint / STATE_FILE])
    state = read_state(checkpoint)
    load_modules(checkpoint, generator, discriminator)
    opt_tensors = load_state(checkpoint / "optimizers.safetensors") if optimizers else {}
    for name, opt in optimizers.items():
        if name not in state["optimizers"]:
            raise CheckpointError(f"{checkpoint}: no state for optimizer '{name}'")
        opt.load_state_dict(unflatten_optimizer(name, opt_tensors, state["optimizers"][name]))
    if restore_random:
        restore_rng(load_state(checkpoint / "rng.safetensors"), state["rng"])
    return state
