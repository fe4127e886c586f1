"""Recipes: what to train and how, as one YAML (with `extends`) read into typed settings.

Top-level keys: model, model_overrides, seed, data, valid, optim, losses, loss_weights,
discriminators, train. See recipes/base.yaml for every key with its default and docs/training.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..config import apply_overrides, deep_merge, load_config
from ..errors import ConfigError
from .loss_specs import parse_losses
from .settings import parse_settings

# `train.init_from: stage:NAME` in a recipe of a chain (recipes/*/chain.yaml): the export of that stage,
# which only `hificodec replay` knows
STAGE_PREFIX = "stage:"
AMP_MODES = ("bf16", "fp16", "none")


@dataclass
class DataSettings:
    segment_seconds: float = 1.0
    # per process and micro-batch: the global batch is batch_size x train.grad_accum_steps x world size
    batch_size: int = 8
    num_workers: int = 0
    loudness_db: float | None = None
    gain_db: tuple[float, float] = (0.0, 0.0)
    mix_prob: float = 0.0


@dataclass
class ValidSettings:
    every: int = 1000
    max_clips: int = 16  # clips scored for validation losses
    metric_clips: int = 4  # of which this many also get PESQ/STOI and audio in TensorBoard
    max_seconds: float = 5.0


@dataclass
class OptimizerSettings:
    name: str = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0


@dataclass
class ScheduleSettings:
    gamma: float = 1.0  # exponential decay factor (1: constant)
    per: str = "epoch"  # decay per "epoch" or per "step"
    warmup_steps: int = 0  # linear warm-up from 0


@dataclass
class TrainSettings:
    max_steps: int = 1000
    max_minutes: float | None = None  # also stop (with a checkpoint) after this much wall time
    log_every: int = 50
    checkpoint_every: int = 1000
    keep_last: int = 3
    # checkpoints older than the last N lose their optimizer state (null: every kept checkpoint has it);
    # they can still be exported, or resumed with fresh optimizer moments
    keep_optimizer_last: int | None = None
    optimizer_state_dtype: str = "float32"  # or bfloat16: half the optimizer bytes; resume no longer bit-exact
    max_bad_steps: int = 10  # stop after this many consecutive non-finite steps
    grad_clip: float | None = None
    # micro-batches (of data.batch_size) whose gradients are summed before each optimizer step: the
    # paper's global batch on fewer or smaller GPUs
    grad_accum_steps: int = 1
    # autocast dtype: "bf16" (GPU only: CPU runs float32), "fp16" (with a gradient scaler: GPUs without
    # bf16; also on CPU where torch has fp16 autocast), or "none"
    amp: str = "bf16"
    # an exponential moving average of the generator's weights (e.g. 0.999; null: none), checkpointed,
    # validated and exported in place of the live weights
    ema_decay: float | None = None
    compile: bool = False
    device: str = "auto"
    find_unused_parameters: bool = True  # quantizer dropout leaves codebooks unused in some steps
    progress: bool = True
    init_from: str | None = None  # a folder written by `hificodec export` (fine-tuning)
    # parameter-name prefixes (e.g. decoder.head) left freshly initialised when starting from init_from,
    # for fine-tuning into a changed architecture; every other tensor must still match in shape
    init_exclude: list[str] = field(default_factory=list)
    # model-config keys (dotted, e.g. decoder.phase_advance) that may differ from the init_from export's
    # with every weight still loaded: options that change what the same weights compute
    init_changes: list[str] = field(default_factory=list)
    freeze_generator: bool = False  # train only the discriminator (warm it up against a fixed generator)
    # an export (`hificodec export` format) written during training and at its end, replaced atomically:
    # what a run with a hard time limit (a borrowed GPU) brings back
    export_to: str | None = None
    export_every_minutes: float = 1.5
    export_dtype: str = "float32"  # or float16 (half the bytes; loads back as float32)
    export_shard_mib: float | None = None  # split weights into safetensors shards of at most this size


@dataclass
class Recipe:
    model: dict[str, Any]
    seed: int
    data: DataSettings
    valid: ValidSettings
    generator_optim: OptimizerSettings
    discriminator_optim: OptimizerSettings
    schedule: ScheduleSettings
    losses: dict[str, Any]  # settings by loss name (`loss_specs.LOSSES`)
    loss_weights: dict[str, float]
    discriminators: dict[str, dict[str, Any]]
    train: TrainSettings
    raw: dict[str, Any]  # the resolved config, saved with checkpoints


def model_config(raw: dict[str, Any]) -> dict[str, Any]:
    model = raw.get("model")
    if model is None:
        raise ConfigError("recipe: 'model' is missing (a preset name, a YAML path or a model dict)")
    config = dict(model) if isinstance(model, dict) else load_config(model)
    if isinstance(config.get("extends"), str):
        config = deep_merge(load_config(config.pop("extends")), config)
    return deep_merge(config, raw.get("model_overrides") or {})


def parse_recipe(raw: dict[str, Any]) -> Recipe:
    known_top = {
        "model", "model_overrides", "seed", "data", "valid", "optim", "losses", "loss_weights",
        "discriminators", "train", "description",
    }
    unknown = set(raw) - known_top
    if unknown:
        raise ConfigError(f"recipe: unknown top-level key(s) {sorted(unknown)}")
    optim = raw.get("optim") or {}
    model = model_config(raw)
    losses, weights = parse_losses(raw.get("losses"), raw.get("loss_weights"), model)
    recipe = Recipe(
        model=model,
        seed=int(raw.get("seed", 1234)),
        data=parse_settings(DataSettings, raw.get("data"), "data"),
        valid=parse_settings(ValidSettings, raw.get("valid"), "valid"),
        generator_optim=parse_settings(OptimizerSettings, optim.get("generator"), "optim.generator"),
        discriminator_optim=parse_settings(OptimizerSettings, optim.get("discriminator"), "optim.discriminator"),
        schedule=parse_settings(ScheduleSettings, optim.get("schedule"), "optim.schedule"),
        losses=losses,
        loss_weights=weights,
        discriminators=dict(raw.get("discriminators") or {}),
        train=parse_settings(TrainSettings, raw.get("train"), "train"),
        raw=raw,
    )
    init_from = recipe.train.init_from
    if isinstance(init_from, str) and init_from.startswith(STAGE_PREFIX):
        raise ConfigError(
            f"recipe: train.init_from is '{init_from}', the export of another stage of its chain: replay the "
            "chain (hificodec replay CHAIN) or pass train.init_from=DIR (a folder from hificodec export)"
        )
    if recipe.train.freeze_generator and not recipe.discriminators:
        raise ConfigError("recipe: train.freeze_generator needs a discriminator ('discriminators' is empty)")
    if recipe.generator_optim.name not in ("adam", "adamw"):
        raise ConfigError(f"recipe: optimizer '{recipe.generator_optim.name}' unknown (use adam or adamw)")
    if recipe.train.export_dtype not in ("float32", "float16"):
        raise ConfigError("recipe: train.export_dtype must be float32 or float16")
    _check_train(recipe.train)
    if recipe.schedule.per not in ("epoch", "step"):
        raise ConfigError("recipe: optim.schedule.per must be 'epoch' or 'step'")
    return recipe


def _check_train(train: TrainSettings) -> None:
    if train.amp not in AMP_MODES:
        raise ConfigError(f"recipe: train.amp is '{train.amp}'; use one of {', '.join(AMP_MODES)}")
    if not isinstance(train.grad_accum_steps, int) or train.grad_accum_steps < 1:
        raise ConfigError(f"recipe: train.grad_accum_steps must be an integer >= 1, not {train.grad_accum_steps!r}")
    if train.ema_decay is not None and not 0.0 < float(train.ema_decay) < 1.0:
        raise ConfigError(f"recipe: train.ema_decay must be between 0 and 1 (e.g. 0.999) or null, "
                          f"not {train.ema_decay!r}")
    if train.keep_optimizer_last is not None and (
        not isinstance(train.keep_optimizer_last, int) or train.keep_optimizer_last < 1
    ):
        raise ConfigError("recipe: train.keep_optimizer_last must be an integer >= 1 (the checkpoint a resume "
                          f"reads needs its optimizer state) or null, not {train.keep_optimizer_last!r}")
    if train.optimizer_state_dtype not in ("float32", "bfloat16"):
        raise ConfigError("recipe: train.optimizer_state_dtype must be float32 or bfloat16")


def load_recipe(path_or_dict: str | os.PathLike | dict[str, Any], overrides: list[str] | None = None) -> Recipe:
    """Read a recipe file (or dict), apply `key=value` overrides, and validate it."""
    raw = dict(path_or_dict) if isinstance(path_or_dict, dict) else load_config(path_or_dict, file_keys=("model",))
    if isinstance(path_or_dict, dict) and "extends" in raw:
        raw = deep_merge(load_config(raw.pop("extends"), file_keys=("model",)), raw)
    raw = apply_overrides(raw, overrides or [])
    return parse_recipe(raw)
