"""Export a training run: the generator in the shipped-model format (`hificodec.save`), and the
discriminator separately (safetensors + its config) so it can seed fine-tuning (`train.init_from`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import yaml

from ..checkpoint import build, has_weights, save_weights, verify_digest, write_digest, write_model_files
from ..errors import CheckpointError
from ..files import atomic_directory, check_output_folder
from ..models import CodecModel
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


def export_run(
    run_dir: str | os.PathLike, out_dir: str | os.PathLike, which: str = "best", ema: bool | None = None
) -> Path:
    """Export checkpoint `which` of a run. The generator written is its EMA (`train.ema_decay`) where the
    checkpoint holds one, unless `ema=False`; `ema=True` requires it."""
    run = Path(run_dir)
    # the export replaces OUT_DIR whole: the run (or a folder holding it) would be gone
    check_output_folder(out_dir, [run], replaced=True)
    source = pick_checkpoint(run, which)
    has_ema = has_weights(source / ckpt.EMA_FILE)
    if ema and not has_ema:
        raise CheckpointError(f"{source}: no generator EMA in this checkpoint (the run had no train.ema_decay)")
    verify_digest(source, [source / ckpt.RECIPE_FILE])
    recipe_file = source / ckpt.RECIPE_FILE
    try:
        raw = yaml.safe_load(recipe_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise CheckpointError(f"{recipe_file}: missing or unreadable recipe ({e})") from None
    recipe = parse_recipe(raw)
    model = build(recipe.model)
    disc = build_discriminator(recipe.discriminators)
    if disc is not None and not (source / ckpt.DISCRIMINATOR_FILE).is_file():
        disc = None  # a generator-only phase of a GAN recipe
    ckpt.load_modules(source, model, disc, ema=has_ema if ema is None else ema)
    return write_export(model, disc, recipe.discriminators, out_dir)


def write_export(
    model: CodecModel, disc: torch.nn.Module | None, discriminators: dict[str, Any], out_dir: str | os.PathLike,
    dtype: torch.dtype | None = None, shard_mib: float | None = None,
) -> Path:
    """The generator as `hificodec.save` writes it, plus `discriminator/` (weights + the recipe's
    `discriminators` settings) when given; the folder is replaced as a whole (atomically)."""
    with atomic_directory(out_dir) as tmp:
        write_model_files(model, tmp, dtype=dtype, shard_mib=shard_mib)
        if disc is not None:
            target = tmp / "discriminator"
            target.mkdir()
            files = save_weights(disc, target / "discriminator.safetensors", dtype=dtype, shard_mib=shard_mib)
            (target / "config.yaml").write_text(
                yaml.safe_dump({"discriminators": discriminators}, sort_keys=False), encoding="utf-8"
            )
            write_digest(target, [*files, target / "config.yaml"])
    return Path(out_dir)
