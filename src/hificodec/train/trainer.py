"""One trainer for every codec family (HiFi-Codec, Encodec, SoundStream), on one CPU or many GPUs.

A step: generator forward; if adversarial training has started, a discriminator update on
[real; fake.detach()] in one pass; then the generator update with reconstruction, quantizer,
adversarial and feature-matching losses (the registered `loss_specs`), weighted by `loss_weights`.

Distributed rules (DDP under torchrun): every rank runs the same collectives in the same order.
Decisions that could differ per rank (a non-finite batch, a stop signal) are OR-ed across ranks
before anyone acts on them; gradient norms are computed after DDP's all-reduce, so every rank
takes the same skip/step decision. Only rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import random
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from ..checkpoint import (
    ACTIVE_CODEBOOKS,
    CONFIG_FILE,
    WEIGHTS_FILE,
    build,
    has_weights,
    load_state_into,
    load_weights,
    verify_digest,
    verify_model_files,
    weight_files,
)
from ..config import dump_config, load_config
from ..data.dataset import AudioSegmentDataset, ResumableBatchSampler, SegmentOptions, collate_segments
from ..data.device_pool import DevicePool
from ..data.holdout import train_valid
from ..data.manifest import ManifestEntry, read_entries
from ..distributed import DistContext, any_across_ranks, barrier, init_distributed, states_match
from ..errors import ConfigError, HificodecError
from ..models import CodecModel
from . import checkpoints as ckpt
from . import losses as L
from .discriminators import build_discriminator
from .export import write_export
from .loss_specs import LossInputs, generator_terms, validation_losses
from .optim import build_optimizer, guarded_step, lr_factor, set_lr
from .recipe import Recipe
from .validation import ValidationResult, load_validation_clips, validate

log = logging.getLogger(__name__)

HISTORY_STEPS = 1000  # steps kept in Trainer.history


class TrainingDiverged(HificodecError):
    """Too many consecutive steps produced non-finite losses or gradients."""


class StepResult:
    """One step's loss terms, kept on the device: reading them (`losses`, `skipped`) waits for the
    step to finish, so the training loop reads them only every `log_every` steps."""

    def __init__(
        self, step: int, values: dict[str, torch.Tensor] | None = None, finite: torch.Tensor | None = None,
        skipped_on_host: bool = False, reason: str = "",
    ) -> None:
        self.step = step
        self.values = values or {}
        self.finite = finite  # False where the update was skipped on the device (non-finite loss/gradient)
        self.skipped_on_host = skipped_on_host
        self.reason = reason

    @property
    def losses(self) -> dict[str, float]:
        if not self.values:
            return {}
        numbers = torch.stack([v.detach().float().reshape(()) for v in self.values.values()]).tolist()
        return dict(zip(self.values, numbers))

    @property
    def skipped(self) -> bool:
        return self.skipped_on_host or (self.finite is not None and not bool(self.finite))


@dataclass
class TrainerState:
    """Everything besides weights and optimizers that a checkpoint must restore."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    skipped_files: int = 0
    bad_steps: int = 0
    bad_streak: int = 0
    best_valid_mel: float | None = None
    valid_history: list[dict[str, Any]] = field(default_factory=list)


def split_data(data: str | Sequence[ManifestEntry], valid: str | Sequence[ManifestEntry] | None):
    """(train entries, valid entries): a manifest's split field decides, with or without `valid`, and no
    entry of a held-out speaker trains (hificodec.data.holdout; what it leaves out is logged)."""
    entries = list(read_entries(data)) if isinstance(data, str) else list(data)
    held = None if valid is None else list(read_entries(valid)) if isinstance(valid, str) else list(valid)
    chosen = train_valid(entries, held)
    for note in chosen.notes:
        log.warning("%s", note)
    return chosen.train, chosen.valid


class Trainer:
    def __init__(
        self,
        recipe: Recipe,
        data: str | Sequence[ManifestEntry] | DevicePool,
        run_dir: str | Path,
        valid: str | Sequence[ManifestEntry] | None = None,
        resume: bool = False,
        ctx: DistContext | None = None,
    ):
        self.recipe = recipe
        self.run_dir = Path(run_dir)
        self.ctx = ctx or init_distributed(recipe.train.device)
        self.device = self.ctx.device
        self.state = TrainerState()
        self.history: list[StepResult] = []
        self._stop_requested = False
        self._device_bad: torch.Tensor | None = None  # skipped updates since the last read
        self._device_bad_streak: torch.Tensor | None = None
        self.flops_per_step: float | None = None  # set by whoever measured it (scripts/gpu_leg.py)
        self.peak_flops: float | None = None  # the device's peak, for the utilisation in the log
        self.on_export: Callable[[], None] | None = None  # called after each export (rank 0)
        self.resume_warning: str | None = None  # set when a resume changed the world size or global batch
        _seed_everything(recipe.seed)

        # models (same seed on every rank -> same init; DDP also broadcasts rank 0's parameters)
        self.model = build(recipe.model).to(self.device)
        self.disc = build_discriminator(recipe.discriminators)
        if self.disc is not None:
            self.disc.to(self.device)
        # the discriminator's spectral-norm parametrizations (their power-iteration vectors are buffers)
        self._spectral_norms = [m for m in (self.disc.modules() if self.disc is not None else [])
                                if type(m).__name__ == "_SpectralNorm"]
        if recipe.train.init_from:
            self._init_from(Path(recipe.train.init_from))
        self.opt_g = build_optimizer(self.model.parameters(), recipe.generator_optim)
        self.opt_d = build_optimizer(self.disc.parameters(), recipe.discriminator_optim) if self.disc else None
        self.sample_rate = int(self.model.sample_rate)

        # data: files through a DataLoader, or a pool of audio already on the device
        segment = int(round(recipe.data.segment_seconds * self.sample_rate))
        segment = max(self.model.hop_length, segment // self.model.hop_length * self.model.hop_length)
        self.segment_options = SegmentOptions(
            sample_rate=self.sample_rate, segment_samples=segment, loudness_db=recipe.data.loudness_db,
            gain_db=(recipe.data.gain_db[0], recipe.data.gain_db[1]), mix_prob=recipe.data.mix_prob,
            seed=recipe.seed,
        )
        self.pool = data if isinstance(data, DevicePool) else None
        if self.pool is not None:
            valid_entries = split_data([], valid)[1]
        else:
            assert not isinstance(data, DevicePool)
            train_entries, valid_entries = split_data(data, valid)
            if not train_entries:
                raise HificodecError("no training entries (check --data and the manifest's split field)")
            self.dataset = AudioSegmentDataset(train_entries, self.segment_options)
            self.sampler = ResumableBatchSampler(
                len(self.dataset), recipe.data.batch_size, seed=recipe.seed,
                rank=self.ctx.rank, world_size=self.ctx.world_size,
            )
        self.valid_clips = load_validation_clips(
            valid_entries, self.sample_rate, recipe.valid.max_clips, recipe.valid.max_seconds
        )
        if not self.valid_clips and self.ctx.is_main:
            log.warning("training without validation: no validation clips (give --valid, or split=valid entries in "
                        "the data); no best checkpoint will be kept, and export takes the last one")

        # losses
        self.weights = recipe.loss_weights
        self.adversarial = recipe.losses["adversarial"]
        self.adv_disc_loss = L.adversarial_losses(self.adversarial.kind)[1]

        # precision: bf16 autocast on GPU; fp16 autocast with a gradient scaler (GPUs without bf16, and
        # the CPU where torch has it); float32 otherwise
        self.amp_dtype = _autocast_dtype(recipe.train.amp, self.device)
        self.amp = self.amp_dtype is not None
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None

        # the generator's moving average: a second model, never trained, in eval mode
        self.ema_model: CodecModel | None = None
        if recipe.train.ema_decay is not None:
            self.ema_model = build(recipe.model).to(self.device).eval().requires_grad_(False)
            self.ema_model.load_state_dict(self.model.state_dict())
            self._ema_pairs = _ema_pairs(self.ema_model, self.model)

        if resume:
            self._resume()
        self._wrap_distributed()
        if self.device.type == "cuda":
            # TF32 matrix products and autotuned convolutions: fixed training shapes, float32 parameters
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        self.forward_g = torch.compile(self.model_ddp) if recipe.train.compile else self.model_ddp
        self.loss_terms = generator_terms  # the generator's loss terms (train.compiled swaps in a compiled one)
        self._writer = None
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "recipe.yaml").write_text(dump_config(recipe.raw), encoding="utf-8")

    @property
    def global_batch(self) -> int:
        """Clips per optimizer step over all processes: batch_size x grad_accum_steps x world size."""
        return self.recipe.data.batch_size * self.recipe.train.grad_accum_steps * self.ctx.world_size

    # ---- setup helpers -------------------------------------------------------------------
    def _init_from(self, directory: Path) -> None:
        """Start from exported weights (`hificodec export`): generator, and discriminator if present.

        The exported architecture must be the recipe's: matching tensor shapes are not enough (an
        option such as the decoder's phase advance changes the output without changing any weight).
        """
        verify_model_files(directory)
        exported = load_config(directory / CONFIG_FILE)
        exported.pop("format_version", None)
        exported.pop(ACTIVE_CODEBOOKS, None)  # training uses every codebook
        exclude = [prefix.rstrip(".") + "." for prefix in self.recipe.train.init_exclude]
        if exported != self.model.config:
            diff = _config_differences(exported, self.model.config)
            changes = set(self.recipe.train.init_changes)
            if not exclude and any(d.split(" ", 1)[0] not in changes for d in diff):
                raise ConfigError(
                    f"train.init_from={directory}: the exported model differs from the recipe's model in "
                    f"{', '.join(diff[:5])}; set the recipe's model (or model_overrides) to match, or name "
                    "the changed modules in train.init_exclude (or the changed keys in train.init_changes)"
                )
            if self.ctx.is_main:
                log.info("init_from %s: architecture differs in %s; not loading %s", directory,
                         ", ".join(diff), ", ".join(exclude) or "nothing")
        load_state_into(self.model, load_weights(directory / WEIGHTS_FILE), str(directory), skip=exclude)
        disc_file = directory / "discriminator" / "discriminator.safetensors"
        if self.disc is not None and has_weights(disc_file):
            verify_digest(disc_file.parent, weight_files(disc_file))
            load_state_into(self.disc, load_weights(disc_file), str(disc_file))

    def _resume(self) -> None:
        latest = ckpt.latest_checkpoint(self.run_dir)
        if latest is None:
            log.warning("--resume: no checkpoint in %s, starting from scratch", self.run_dir)
            return
        optimizers = {"generator": self.opt_g, **({"discriminator": self.opt_d} if self.opt_d else {})}
        saved = ckpt.load_checkpoint(latest, self.model, self.disc, optimizers, ema=self.ema_model)
        known = TrainerState.__dataclass_fields__
        self.state = TrainerState(**{k: v for k, v in saved.items() if k in known})
        if self.scaler is not None and saved.get("grad_scaler"):
            self.scaler.load_state_dict(saved["grad_scaler"])
        if self.ema_model is not None and not saved["ema_loaded"]:  # on every rank: they must agree
            self.ema_model.load_state_dict(self.model.state_dict())
        if not self.ctx.is_main:
            return
        log.info("resumed from %s (step %d)", latest, self.state.step)
        if self.ema_model is not None and not saved["ema_loaded"]:
            log.warning("%s has no generator EMA (train.ema_decay was off): the EMA starts from its weights", latest)
        if not saved["optimizer_loaded"]:
            log.warning("%s holds no optimizer state (train.keep_optimizer_last): the optimizers' moments "
                        "start afresh", latest)
        self.resume_warning = _batch_change(saved, self.ctx.world_size, self.global_batch)
        if self.resume_warning:
            log.warning("%s", self.resume_warning)

    def _wrap_distributed(self) -> None:
        self.model_ddp: torch.nn.Module = self.model
        self.disc_ddp: torch.nn.Module | None = self.disc
        if not self.ctx.enabled:
            return
        ids = [self.device.index] if self.device.type == "cuda" else None
        # the quantizer synchronises its own codebook state (EMA, k-means, restarts) across ranks,
        # so DDP must not overwrite buffers from rank 0 at every forward
        self.model_ddp = DDP(
            self.model, device_ids=ids, find_unused_parameters=self.recipe.train.find_unused_parameters,
            **_buffer_sync(False),
        )
        if self.disc is not None:
            # spectral-norm power-iteration vectors are buffers: keep them identical from rank 0
            self.disc_ddp = DDP(self.disc, device_ids=ids, **_buffer_sync(True))

    # ---- data ----------------------------------------------------------------------------
    def _batches(self) -> Iterator[dict]:
        if self.pool is not None:
            yield from self._pool_batches(self.pool)
            return
        loader_kw: dict[str, Any] = dict(
            batch_sampler=self.sampler, collate_fn=collate_segments, num_workers=self.recipe.data.num_workers,
            pin_memory=self.device.type == "cuda",
            # a private generator: creating an iterator must not consume the global RNG (exact resume)
            generator=torch.Generator().manual_seed(self.recipe.seed),
        )
        while True:
            self.sampler.set_position(self.state.epoch, self.state.batch_in_epoch)
            for batch in DataLoader(self.dataset, **loader_kw):
                self.state.batch_in_epoch += 1
                yield batch
            self.state.epoch += 1
            self.state.batch_in_epoch = 0

    def _pool_batches(self, pool: DevicePool) -> Iterator[dict]:
        """Batches cut on the device; each drawn with a generator seeded by (seed, rank, epoch, batch),
        so a resumed run draws what the uninterrupted one would have."""
        size = self.recipe.data.batch_size
        per_epoch = max(1, math.ceil(len(pool) / (size * self.ctx.world_size)))
        generator = torch.Generator(device=self.device)
        while True:
            st = self.state
            generator.manual_seed(((self.recipe.seed * 1_000_003 + st.epoch) * 65_537 + st.batch_in_epoch) * 257
                                  + self.ctx.rank)
            audio = pool.batch(self.segment_options, size, generator)
            st.batch_in_epoch += 1
            if st.batch_in_epoch >= per_epoch:
                st.epoch += 1
                st.batch_in_epoch = 0
            yield {"audio": audio}

    # ---- one step ------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is not None:
            return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    @staticmethod
    def _micro_step(module: torch.nn.Module | None, index: int, count: int):
        """DDP's `no_sync` on every micro-step but the last: gradients pile up locally and are all-reduced
        once, in the last micro-step's backward (forward and backward both run inside it)."""
        if count > 1 and index < count - 1 and isinstance(module, DDP):
            return module.no_sync()
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _power_iteration_held(self, hold: bool) -> Iterator[None]:
        """Spectral norm advances its power iteration at every training-mode forward of the discriminator.
        Micro-batches after the first reuse the vectors (eval mode of those parametrizations only), so an
        accumulated step advances it as often as the step on one batch does and computes the same update."""
        held = [m for m in self._spectral_norms if m.training] if hold else []
        for m in held:
            m.train(False)
        try:
            yield
        finally:
            for m in held:
                m.train(True)

    def _spectral_tensors(self) -> list[torch.Tensor]:
        """The power-iteration vectors (buffers `_u`, `_v`) of the discriminator's spectral norms."""
        return [getattr(m, name) for m in self._spectral_norms for name in ("_u", "_v")]

    def _spectral_vectors(self) -> list[torch.Tensor]:
        return [t.clone() for t in self._spectral_tensors()]

    def _set_spectral_vectors(self, saved: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for t, value in zip(self._spectral_tensors(), saved):
                t.copy_(value)

    def train_step(self, batch: dict | Sequence[dict]) -> StepResult:
        """One update from one batch, or from `train.grad_accum_steps` micro-batches (a list) whose
        gradients are summed: each micro-batch's loss is divided by their number, so the summed gradient
        is the gradient of the mean loss over all of them, i.e. of one batch that holds them all.

        Nothing here waits for the device: non-finite losses or gradients skip the optimizer updates on
        the device (fused AdamW's `found_inf`), counted by `_read_device_counters`."""
        st = self.state
        micro = [batch] if isinstance(batch, dict) else list(batch)
        count = len(micro)
        st.skipped_files += sum(int(b.get("skipped", 0)) for b in micro)
        factor = lr_factor(self.recipe.schedule, st.step, st.epoch)
        set_lr(self.opt_g, self.recipe.generator_optim.lr, factor)
        if self.opt_d is not None:
            set_lr(self.opt_d, self.recipe.discriminator_optim.lr, factor)

        # a NaN batch would poison EMA codebooks: checked before the model sees it. Batches read from
        # files are checked on the host (no device wait); a device pool holds int16 audio, finite by type.
        bad_input = any(b["audio"].device.type == "cpu" and not bool(torch.isfinite(b["audio"]).all()) for b in micro)
        if self.ctx.enabled:  # every rank must take the same decision
            bad_input = bool(any_across_ranks(torch.tensor([float(bad_input)], device=self.device), self.ctx)[0] > 0)
        if bad_input:
            return self._bad_step("non-finite input batch")
        reals = [b["audio"].to(self.device, non_blocking=True) for b in micro]

        frozen = self.recipe.train.freeze_generator
        adversarial = self.disc is not None and (frozen or st.step >= self.adversarial.start_step)
        values: dict[str, torch.Tensor] = {}
        first_out: Any = None  # the generator's output on the only batch, when the discriminator step made it

        if adversarial:
            fakes = []
            for real in reals:
                if frozen:
                    # a fixed generator: eval mode too, so codebooks (EMA, restarts) stay as they are
                    self.model.eval()
                    with torch.no_grad(), self._autocast():
                        fakes.append(self.model(real).audio.float())
                    self.model.train()
                elif count == 1:
                    with self._autocast():
                        first_out = self.forward_g(real)
                    fakes.append(first_out.audio.float().detach())
                else:
                    fakes.append(self._replayable_fake(real))
            values["disc"] = self._discriminator_step(reals, fakes)
            if frozen:
                if self.scaler is not None:
                    self.scaler.update()
                st.step += 1
                st.bad_streak = 0
                return StepResult(st.step, values)
            # generator side: discriminator frozen (no weight gradients), real features are targets
            assert self.disc is not None
            self.disc.requires_grad_(False)

        # the generator: forward and backward per micro-batch, gradients summed, one update
        sums: dict[str, torch.Tensor] = {}
        after_real: list[torch.Tensor] = []
        self.opt_g.zero_grad(set_to_none=True)
        for i, real in enumerate(reals):
            with self._micro_step(self.model_ddp, i, count):
                if first_out is not None:
                    out, first_out = first_out, None
                else:
                    with self._autocast():
                        out = self.forward_g(real)
                fake = out.audio.float()
                d_real = d_fake = None
                if adversarial:
                    assert self.disc is not None
                    with self._power_iteration_held(i > 0):
                        # a later micro-batch's real pass sees the spectral-norm vectors the first one's saw
                        latest = self._spectral_vectors() if i > 0 else None
                        if i > 0:
                            self._set_spectral_vectors(after_real)
                        with torch.no_grad(), self._autocast():
                            d_real = self.disc(real)
                        if i == 0 and count > 1:
                            after_real = self._spectral_vectors()
                        if latest is not None:
                            self._set_spectral_vectors(latest)
                        with self._autocast():
                            d_fake = self.disc(fake)
                inputs = LossInputs(real, fake, self.sample_rate, self.model.hop_length, out.losses, out.pitch,
                                    d_real, d_fake)
                terms = self.loss_terms(inputs, self.recipe.losses, self.weights)
                total = sum((self.weights.get(k, 0.0) * v for k, v in terms.items()),
                            torch.zeros((), device=self.device))
                self._backward(total / count if count > 1 else total)
            terms["total"] = total
            if out.perplexity is not None:
                terms["perplexity"] = out.perplexity.float().mean()
            for k, v in terms.items():
                v = v.detach()
                sums[k] = sums[k] + v if k in sums else v
        means = {k: v / count for k, v in sums.items()} if count > 1 else sums
        total = means["total"]
        if self.scaler is not None:
            self.scaler.unscale_(self.opt_g)
        norm_g = self._clip(self.model.parameters())
        finite = torch.isfinite(norm_g) & torch.isfinite(total)
        guarded_step(self.opt_g, finite)
        if self.scaler is not None:
            self.scaler.update()
        self._update_ema()
        values.update(means)
        values["grad_norm"] = norm_g.detach()
        # under fp16 an overflowing gradient is the scaler's business (it skips the update and lowers its
        # scale, several times at the start of a run): only a non-finite loss counts as a bad step
        self._count_device_outcome(torch.isfinite(total) if self.scaler is not None else finite)
        st.step += 1
        st.bad_streak = 0
        return StepResult(st.step, values, finite=finite)

    def _discriminator_step(self, reals: list[torch.Tensor], fakes: list[torch.Tensor]) -> torch.Tensor:
        """One discriminator update over the micro-batches: one pass over [real; fake] each (one STFT per
        scale for both halves), gradients summed; returns the mean loss."""
        assert self.disc is not None and self.disc_ddp is not None and self.opt_d is not None
        count = len(reals)
        self.disc.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for i, (real, fake) in enumerate(zip(reals, fakes)):
            with self._micro_step(self.disc_ddp, i, count), self._power_iteration_held(i > 0):
                with self._autocast():
                    d_out = self.disc_ddp(torch.cat([real, fake.detach()]))
                d_on_real, d_on_fake = d_out.split(real.shape[0])
                loss_d = self.adv_disc_loss(d_on_real.logits, d_on_fake.logits)
                self._backward(loss_d / count if count > 1 else loss_d)
            total = total + loss_d.detach()
        if self.scaler is not None:
            self.scaler.unscale_(self.opt_d)
        norm_d = self._clip(self.disc.parameters())
        loss = total / count
        guarded_step(self.opt_d, torch.isfinite(norm_d) & torch.isfinite(loss))
        return loss

    def _replayable_fake(self, real: torch.Tensor) -> torch.Tensor:
        """The generator's output on a micro-batch for the discriminator's update, ahead of the generator's
        own pass over it: a no-grad training pass whose side effects are undone, so that the later pass
        with gradients computes the same output (same random draws: quantizer dropout, k-means seeds;
        same codebook state: EMA, k-means init, dead-code restarts).

        Why a second pass: the discriminator must be updated before the generator's adversarial terms
        are computed (as in a single-batch step), and keeping every micro-batch's generator graph until
        then would hold the activations of the whole batch, which is what accumulation avoids.
        """
        saved = {k: v.clone() for k, v in self.model.state_dict().items()}
        cpu_rng = torch.get_rng_state()
        device_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        with torch.no_grad(), self._autocast():
            fake = self.model(real).audio.float()
        self.model.load_state_dict(saved)  # also resets the quantizers' host-side "initialised" flags
        torch.set_rng_state(cpu_rng)
        if device_rng is not None:
            torch.cuda.set_rng_state(device_rng, self.device)
        return fake

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema <- decay * ema + (1 - decay) * live, for every floating-point tensor of the generator's state
        (weights and codebook buffers); counters and flags are copied. The decay ramps up as
        min(ema_decay, (1 + t) / (10 + t)) over the first updates t, so the average does not remember
        the random initialisation for thousands of steps."""
        if self.ema_model is None:
            return
        decay = min(float(self.recipe.train.ema_decay or 0.0), (1 + self.state.step) / (10 + self.state.step))
        averaged, live, copied, source = self._ema_pairs
        if averaged:
            torch._foreach_lerp_(averaged, live, 1.0 - decay)
        for target, value in zip(copied, source):
            target.copy_(value)

    def _count_device_outcome(self, finite: torch.Tensor) -> None:
        """Track skipped updates on the device (a count, and the current run of them)."""
        bad = (~finite).to(torch.int64)
        if self._device_bad is None or self._device_bad_streak is None:
            self._device_bad = torch.zeros((), dtype=torch.int64, device=self.device)
            self._device_bad_streak = torch.zeros((), dtype=torch.int64, device=self.device)
        self._device_bad.add_(bad)
        self._device_bad_streak.add_(1).mul_(bad)  # +1 on a bad step, back to 0 on a good one

    def _read_device_counters(self) -> None:
        """Fold the device-side count of skipped updates into the state (waits for the device), and stop
        a diverged run."""
        if self._device_bad is None or self._device_bad_streak is None:
            return
        bad, streak = (int(v) for v in torch.stack([self._device_bad, self._device_bad_streak]).tolist())
        self._device_bad.zero_()
        self.state.bad_steps += bad
        if bad and self.ctx.is_main:
            log.warning("step %d: %d update(s) skipped for non-finite losses or gradients", self.state.step, bad)
        if streak >= self.recipe.train.max_bad_steps:
            raise TrainingDiverged(
                f"{streak} consecutive steps had non-finite losses or gradients (last at step {self.state.step}); "
                "training stopped. Lower the learning rate, set train.grad_clip, or check the data."
            )

    def _clip(self, params) -> torch.Tensor:
        """Clip to `train.grad_clip` (if set); the total norm before clipping, on the device."""
        limit = self.recipe.train.grad_clip
        params = [p for p in params if p.grad is not None]
        if not params:
            return torch.zeros((), device=self.device)
        return torch.nn.utils.clip_grad_norm_(params, limit if limit else float("inf"))

    def _bad_step(self, reason: str) -> StepResult:
        st = self.state
        st.bad_steps += 1
        st.bad_streak += 1
        if self.ctx.is_main:
            log.warning("step %d skipped: %s (%d in a row)", st.step, reason, st.bad_streak)
        if st.bad_streak >= self.recipe.train.max_bad_steps:
            raise TrainingDiverged(
                f"{st.bad_streak} consecutive steps had {reason} (last at step {st.step}); training stopped. "
                "Lower the learning rate, set train.grad_clip, or check the data."
            )
        return StepResult(st.step, skipped_on_host=True, reason=reason)

    # ---- the loop ------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None) -> TrainerState:
        """Train until `max_steps` (default: the recipe's), `train.max_minutes`, a stop signal, or divergence.

        The loop waits for the device only every `log_every` steps (to log), and to validate or save.
        """
        cfg = self.recipe.train
        target = max_steps if max_steps is not None else cfg.max_steps
        handlers = self._install_signal_handlers()
        bar = _progress(target, self.state.step, enabled=self.ctx.is_main and cfg.progress)
        running: dict[str, list[torch.Tensor]] = {}
        last_saved = self.state.step
        t0 = started = last_export = time.perf_counter()
        try:
            batches = self._batches()
            accum = cfg.grad_accum_steps
            while self.state.step < target:
                result = self.train_step(next(batches) if accum == 1 else [next(batches) for _ in range(accum)])
                self._remember(result)
                if not result.skipped_on_host:
                    for k, v in result.values.items():
                        running.setdefault(k, []).append(v)
                    bar.update(1)
                if self._agreed_stop():
                    if self.ctx.is_main:
                        log.warning("stop requested: writing a checkpoint at step %d", self.state.step)
                    break
                if result.skipped_on_host:
                    continue
                step = self.state.step
                if step % cfg.log_every == 0:
                    self._read_device_counters()
                    entry = self._log_train(running, time.perf_counter() - t0)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in entry.items() if k in ("mel", "total", "disc")},
                                    refresh=False)
                    running, t0 = {}, time.perf_counter()
                if self.valid_clips and step % self.recipe.valid.every == 0:
                    self._validate_and_log()
                if step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                    last_saved = step
                now = time.perf_counter()
                if cfg.export_to and now - last_export > 60 * cfg.export_every_minutes:
                    self.export(cfg.export_to)
                    last_export = time.perf_counter()
                if cfg.max_minutes is not None and now - started > 60 * cfg.max_minutes:
                    self._stop_requested = True  # agreed across ranks (at a log step), then we stop
            self._read_device_counters()
            if running:  # the steps since the last log line: the one a stop interrupted, or a short tail
                self._log_train(running, time.perf_counter() - t0)
            if self.state.step != last_saved or self._stop_requested:
                self.save_checkpoint()
            if cfg.export_to:
                self.export(cfg.export_to)
        finally:
            bar.close()
            self._restore_signal_handlers(handlers)
            if self._writer is not None:
                self._writer.flush()
        return self.state

    def _remember(self, result: StepResult) -> None:
        """Keep recent steps in `history` (bounded: a long run would hold a tensor per loss per step)."""
        self.history.append(result)
        if len(self.history) > 2 * HISTORY_STEPS:
            del self.history[:-HISTORY_STEPS]

    def _agreed_stop(self) -> bool:
        """Whether to stop now. One process decides alone; ranks agree at log steps (a collective
        every step would make each one wait for the slowest)."""
        if not self.ctx.enabled:
            return self._stop_requested
        if self.state.step % self.recipe.train.log_every != 0:
            return False
        flag = torch.tensor([1.0 if self._stop_requested else 0.0], device=self.device)
        self._stop_requested = bool(any_across_ranks(flag, self.ctx)[0] > 0)
        return self._stop_requested

    @property
    def generator_for_use(self) -> CodecModel:
        """What validation scores and exports write: the EMA of the generator when there is one."""
        return self.ema_model if self.ema_model is not None else self.model

    def export(self, directory: str | Path) -> Path | None:
        """Write the generator (its EMA with `train.ema_decay`) and the discriminator as `hificodec export`
        does (`train.export_dtype`, sharded at `train.export_shard_mib`), replacing `directory`
        atomically. Rank 0 writes."""
        path = None
        if self.ctx.is_main:
            cfg = self.recipe.train
            dtype = {"float16": torch.float16, "float32": None}[cfg.export_dtype]
            path = write_export(
                self.generator_for_use, self.disc, self.recipe.discriminators, directory, dtype=dtype,
                shard_mib=cfg.export_shard_mib,
            )
            self._append_log({"kind": "export", "step": self.state.step, "path": str(directory)})
            if self.on_export is not None:
                self.on_export()
        barrier(self.ctx)
        return path

    def request_stop(self) -> None:
        """Ask the loop to checkpoint and stop at the next step boundary (what SIGINT/SIGTERM do)."""
        self._stop_requested = True

    def _install_signal_handlers(self) -> dict:
        old = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, lambda *_: self.request_stop())
        except ValueError:  # not in the main thread
            pass
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict) -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    # ---- validation, logging, checkpoints -------------------------------------------------
    def validation_loss_fns(self) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
        return validation_losses(self.recipe.losses, self.sample_rate, self.model.hop_length)

    def run_validation(self) -> ValidationResult:
        # every rank runs the same validation (no rank-dependent control flow); rank 0 logs it
        return validate(
            self.generator_for_use, self.valid_clips, self.validation_loss_fns(), self.sample_rate,
            self.recipe.valid.metric_clips, self.device,
        )

    def _validate_and_log(self) -> None:
        res = self.run_validation()
        st = self.state
        entry = {"step": st.step, **{f"valid/{k}": v for k, v in res.losses.items()}}
        if res.pesq is not None:
            entry["valid/pesq"] = res.pesq
        if res.stoi is not None:
            entry["valid/stoi"] = res.stoi
        st.valid_history.append(entry)
        mel = res.losses["mel"]
        improved = st.best_valid_mel is None or mel < st.best_valid_mel
        if improved:
            st.best_valid_mel = mel
        if self.ctx.is_main:
            self._append_log({"kind": "valid", **entry})
            writer = self._tensorboard()
            if writer is not None:
                for k, v in entry.items():
                    if k != "step":
                        writer.add_scalar(k, v, st.step)
                for i, (r, f) in enumerate(res.examples):
                    writer.add_audio(f"valid/{i}/decoded", f, st.step, sample_rate=self.sample_rate)
                    if st.step == self.recipe.valid.every:
                        writer.add_audio(f"valid/{i}/original", r, st.step, sample_rate=self.sample_rate)
        if improved:
            path = self.save_checkpoint()
            if self.ctx.is_main and path is not None:
                ckpt.mark_best(self.run_dir, path, with_optimizer=self.recipe.train.keep_optimizer_last is None)

    def _log_train(self, running: dict[str, list[torch.Tensor]], seconds: float) -> dict[str, float]:
        """Log the window's mean losses (one read from the device for all of them), speed and, when
        `flops_per_step` is known, the achieved model FLOP/s and its share of `peak_flops`."""
        n = max((len(v) for v in running.values()), default=1)  # steps in this window
        names = list(running)
        means = torch.stack([torch.nanmean(torch.stack(running[k]).float()) for k in names]).tolist() if names else []
        entry: dict[str, Any] = dict(zip(names, means))
        if not self.ctx.is_main:
            return entry
        steps_per_s = n / max(seconds, 1e-9)
        entry.update(
            step=self.state.step, epoch=self.state.epoch, steps_per_s=steps_per_s,
            lr=self.opt_g.param_groups[0]["lr"], skipped_files=self.state.skipped_files,
            bad_steps=self.state.bad_steps,
        )
        if self.flops_per_step:
            entry["tflops"] = self.flops_per_step * steps_per_s / 1e12
            if self.peak_flops:
                entry["mfu"] = self.flops_per_step * steps_per_s / self.peak_flops
        if self.opt_d is not None:
            entry["lr_disc"] = self.opt_d.param_groups[0]["lr"]
        if self.scaler is not None:
            entry["grad_scale"] = self.scaler.get_scale()  # falls at each fp16 overflow, doubles when stable
        self._append_log({"kind": "train", **entry})
        if not self.recipe.train.progress:  # no progress bar: a line per log step instead
            shown = ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if k not in ("step", "epoch", "lr_disc"))
            log.info("step %d: %s", self.state.step, shown)
        writer = self._tensorboard()
        if writer is not None:
            for k, v in entry.items():
                if k != "step":
                    writer.add_scalar(f"train/{k}", v, self.state.step)
        return entry

    def _append_log(self, entry: dict) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def _tensorboard(self):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional dependency
                self._writer = False
                log.warning("tensorboard not installed: logging to log.jsonl only")
            else:
                self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        return self._writer or None

    def save_checkpoint(self) -> Path | None:
        """Rank 0 writes; every rank waits so nobody runs ahead of a checkpoint."""
        path = None
        self._read_device_counters()
        modules = [self.model] + [m for m in (self.ema_model, self.disc) if m is not None]
        in_sync = states_match([t for m in modules for t in m.state_dict().values()], self.ctx)
        if not in_sync and self.ctx.is_main:
            log.error("step %d: ranks hold different weights or codebooks (DDP out of sync)", self.state.step)
        if self.ctx.is_main:
            cfg = self.recipe.train
            optimizers = {"generator": self.opt_g, **({"discriminator": self.opt_d} if self.opt_d else {})}
            state = {k: getattr(self.state, k) for k in TrainerState.__dataclass_fields__}
            state["world_size"] = self.ctx.world_size
            state["global_batch"] = self.global_batch
            state["ranks_in_sync"] = in_sync
            if self.scaler is not None:
                state["grad_scaler"] = self.scaler.state_dict()
            path = ckpt.save_checkpoint(
                self.run_dir, self.state.step, self.model, self.disc, optimizers, state, self.recipe.raw,
                keep_last=cfg.keep_last, ema=self.ema_model, keep_optimizer_last=cfg.keep_optimizer_last,
                optimizer_dtype=torch.bfloat16 if cfg.optimizer_state_dtype == "bfloat16" else None,
            )
        barrier(self.ctx)
        return path


def _autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype `train.amp` gives on `device` (None: float32)."""
    if amp == "none" or (amp == "bf16" and device.type != "cuda"):
        return None  # bf16 autocast did not speed up CPU training (docs/training.md)
    if amp == "bf16":
        if not _native_bf16():
            log.warning("train.amp=bf16 on %s, which has no native bfloat16: set train.amp=fp16 (with a "
                        "gradient scaler) for speed", torch.cuda.get_device_name(device))
        return torch.bfloat16
    try:  # fp16: probe the device's autocast (CPU autocast has float16 in recent torch only)
        with torch.autocast(device_type=device.type, dtype=torch.float16):
            probe = torch.mm(torch.ones(2, 2, device=device), torch.ones(2, 2, device=device))
    except (RuntimeError, AssertionError) as e:
        raise ConfigError(f"train.amp=fp16: autocast to float16 is not available on {device} ({e}); "
                          "use train.amp=none (float32)") from None
    if probe.dtype != torch.float16:
        raise ConfigError(f"train.amp=fp16: this torch ({torch.__version__}) has no float16 autocast on "
                          f"{device.type}; use train.amp=none (float32) there")
    return torch.float16


def _native_bf16() -> bool:
    """Whether the GPU computes in bfloat16 natively (torch's default answer also counts emulation)."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # a torch without the argument answers for native support
        return torch.cuda.is_bf16_supported()


def _ema_pairs(
    ema: torch.nn.Module, live: torch.nn.Module
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """(averaged EMA tensors, their live sources, copied EMA tensors, their sources): the tensors of
    the two state dicts (views of the modules' own storage), floating-point ones averaged."""
    ema_state, live_state = ema.state_dict(), live.state_dict()
    floating = [k for k, v in live_state.items() if v.is_floating_point()]
    other = [k for k in live_state if k not in set(floating)]
    return ([ema_state[k] for k in floating], [live_state[k] for k in floating],
            [ema_state[k] for k in other], [live_state[k] for k in other])


def _batch_change(saved: dict[str, Any], world_size: int, global_batch: int) -> str | None:
    """What a resume changes in the run's batch, in words (None: nothing). The sampler shards the data
    by rank, so another world size also changes which clips come next."""
    old_world, old_batch = saved.get("world_size"), saved.get("global_batch")
    world_changed = old_world is not None and old_world != world_size
    batch_changed = old_batch is not None and old_batch != global_batch
    if not (world_changed or batch_changed):
        return None
    said = f"resuming a checkpoint written by {old_world} process(es) with {world_size}: " if world_changed else (
        "resuming with another batch: ")
    if batch_changed:
        said += (f"the global batch changes from {old_batch} to {global_batch} clips per step (data.batch_size x "
                 "train.grad_accum_steps x processes), the learning rate is not rescaled")
    else:
        said += f"the global batch stays {global_batch} clips per step"
    if world_changed:
        said += ", and the data order differs from the uninterrupted run"
    if batch_changed:
        said += "; set data.batch_size or train.grad_accum_steps to keep the global batch"
    return said


def _config_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested configs."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            out += _config_differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')} ({a!r} vs {b!r})"]


def _buffer_sync(every_forward: bool) -> dict[str, Any]:
    """DDP's buffer-broadcast flag under its current name (`broadcast_buffers` before torch 2.13)."""
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        return {"forward_sync_buffers": every_forward}
    return {"broadcast_buffers": every_forward}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _progress(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, dynamic_ncols=True, unit="step")
