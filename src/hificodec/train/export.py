"""Export a training run: the generator in the shipped-model format (`hificodec.save`), and the
discriminator separately (safetensors + its config) so it can seed fine-tuning (`train.init_from`)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from safetensors.torch import save_file

from ..audio import atomic_output
from ..checkpoint import build, load_state, load_state_into, save
from ..errors import CheckpointError
from . import checkpoints as ckpt
from .discriminators import build_discriminator
from .recipe import parse_recipe


def pick_checkpoint(run_dir: Path, which: str = "best") -> Path:
    """`best` (falls back to the latest when no validation ran), `last`, or a checkpoint folder name."""
    root = run_dir / "checkpoints"
    if which == "best" and (root / "best").is_dir():
        return root / "best"
    if which in ("best", "last"):
        latest = ckpt.latest_checkpoint(run_dir)
        if latest is None:
            raise CheckpointError(f"{run_dir}: no checkpoints found (expected {root}/step-*)")
        return latest
    if (root / which).is_dir():
        return root / which
    raise CheckpointError(f"{run_dir}: no checkpoint named '{which}'")


def export_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike, which: str = "best") -> Path:
    run = Path(run_dir)
    source = pick_checkpoint(run, which)
    recipe_file = source / "recipe.yaml"
    try:
        raw = yaml.safe_load(recipe_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise CheckpointError(f"{recipe_file}: missing or unreadable recipe ({e})") from None
    recipe = parse_recipe(raw)
    model = build(recipe.model)
    load_state_into(model, load_state(source / "generator.safetensors"), str(source))
    out = save(model.eval(), out_dir)
    disc = build_discriminator(recipe.discriminators)
    disc_file = source / "discriminator.safetensors"
    if disc is not None and disc_file.is_file():
        load_state_into(disc, load_state(disc_file), str(source))
        target = out / "discriminator"
        target.mkdir(exist_ok=True)
        state = {k: v.contiguous() for k, v in disc.state_dict().items()}
        with atomic_output(target / "discriminator.safetensors") as tmp:
            save_file(state, tmp)
        with atomic_output(target / "config.yaml") as tmp, open(tmp, "w", encoding="utf-8") as f:
            yaml.safe_dump({"discriminators": recipe.discriminators}, f, sort_keys=False)
    return out
