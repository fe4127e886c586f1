"""What a GPU leg keeps of its training (hificodec.train.leg_state) and the batch-size rule (leg.BatchScaling)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import hificodec
from hificodec.checkpoint import load_weights
from hificodec.data.device_pack import PackAudio
from hificodec.data.device_pool import DevicePool
from hificodec.train import Trainer, load_recipe
from hificodec.train.leg import BatchScaling, LegTrainer
from hificodec.train.leg_state import (
    STATE_FILE,
    LegCounters,
    fp16_weights_digest,
    full_adam,
    load_adam,
    pack_bits,
    read_leg_state,
    second_moment,
    unpack_bits,
    write_leg_state,
)
from hificodec.train.optim import build_optimizer, lr_factor
from hificodec.train.recipe import OptimizerSettings
from tiny_codecs import TINY_RECIPES

TINY = str(TINY_RECIPES / "tiny-hificodec.yaml")


def _pool() -> DevicePool:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(16000 * 3) * 3000).astype(np.int16)
    return DevicePool(PackAudio(audio, np.array([0, 16000, 32000]), np.array([16000] * 3), ["a", "b", "c"], 16000),
                      "cpu")


def _stepped(module: torch.nn.Module, steps: int = 3) -> torch.optim.Optimizer:
    opt = build_optimizer(module.parameters(), OptimizerSettings(name="adamw", lr=1e-3, betas=(0.8, 0.99)))
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        for p in module.parameters():
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return opt


def test_second_moments_come_back_whole_or_as_their_rank_one_fit(tmp_path):
    layer = torch.nn.Sequential(torch.nn.Conv1d(16, 128, 3), torch.nn.Linear(4, 4))  # 6144, 128, 16, 4 elements
    opt = _stepped(layer)
    write_leg_state(tmp_path / STATE_FILE, generator_digest="x", counters=LegCounters(12.5, 8, 100, [1]),
                    optimizers=[("generator", opt, layer)])
    state = read_leg_state(tmp_path / STATE_FILE)
    assert state.counters == LegCounters(12.5, 8, 100, [1]) and state.generator_digest == "x"
    kept = set(state.tensors)
    assert "adam.generator.0.weight.v_rows" in kept and "adam.generator.0.weight.v" not in kept  # factored
    assert {"adam.generator.0.bias.v", "adam.generator.1.weight.v"} <= kept  # small: whole
    assert "adam.generator.0.weight.m_signs" in kept and "adam.generator.1.weight.m" in kept
    assert state.path.stat().st_size < 14_000  # 12,584 moments in ~1.9k numbers and 6,144 bits

    fresh = build_optimizer(layer.parameters(), OptimizerSettings(name="adamw", lr=1e-3, betas=(0.8, 0.99)))
    assert state.restore("generator", fresh, layer) == {"restored": 4, "missing": 0}
    for p in layer.parameters():
        old, new = opt.state[p], fresh.state[p]
        assert float(new["step"]) == 3
        if p.dim() == 1 or p.numel() < 1024:
            assert torch.equal(new["exp_avg_sq"], old["exp_avg_sq"]) and torch.equal(new["exp_avg"], old["exp_avg"])
        else:  # the rank-1 fit keeps each row's and column's total; the momentum its signs and row magnitudes
            matrix, fit = old["exp_avg_sq"].reshape(p.shape[0], -1), new["exp_avg_sq"].reshape(p.shape[0], -1)
            assert torch.allclose(fit.sum(1), matrix.sum(1), rtol=1e-4)
            assert torch.allclose(fit.sum(0), matrix.sum(0), rtol=1e-4)
            m_old, m_new = old["exp_avg"].reshape(p.shape[0], -1), new["exp_avg"].reshape(p.shape[0], -1)
            assert torch.equal(m_new.sign(), m_old.sign())
            assert torch.allclose(m_new.abs().mean(1), m_old.abs().mean(1), rtol=1e-5)
    fresh.step()  # the restored state is one Adam can use (fused on the CPU too)
    again = build_optimizer(layer.parameters(), OptimizerSettings(name="adamw", lr=1e-3, betas=(0.8, 0.99)))
    state.restore("generator", again, layer, first_moments=False)
    assert all(torch.count_nonzero(again.state[p]["exp_avg"]) == 0 for p in layer.parameters())


def test_bits_pack_as_numpy_packs_them():
    bits = torch.rand(1003, generator=torch.Generator().manual_seed(0)) > 0.5
    packed = pack_bits(bits)
    assert np.array_equal(packed.numpy(), np.packbits(bits.numpy()))
    assert torch.equal(unpack_bits(packed, 1003), bits)


def test_a_rank_one_second_moment_comes_back_exactly():
    v = torch.outer(torch.rand(32) + 0.1, torch.rand(64) + 0.1).reshape(32, 16, 4)
    tensors = {"k.v_rows": v.reshape(32, -1).sum(1), "k.v_cols": v.reshape(32, -1).sum(0)}
    assert torch.allclose(second_moment(tensors, "k", v.shape), v, rtol=1e-5)
    assert second_moment(tensors, "other", v.shape) is None


def test_full_moments_restore_adam_exactly():
    layer = torch.nn.Linear(8, 8)
    opt = _stepped(layer)
    fresh = build_optimizer(layer.parameters(), OptimizerSettings(name="adamw", lr=1e-3, betas=(0.8, 0.99)))
    load_adam(fresh, layer, {}, "adam.generator.", full=full_adam(opt, layer))
    for p in layer.parameters():
        assert all(torch.equal(opt.state[p][k], fresh.state[p][k]) for k in ("step", "exp_avg", "exp_avg_sq"))


def test_batch_scaling_keeps_one_schedule_per_clip(tmp_path):
    recipe = load_recipe(TINY, ["train.device=cpu", "optim.schedule.per=step", "optim.schedule.gamma=0.99",
                                "optim.schedule.warmup_steps=8"])
    trainer = Trainer(recipe, _pool(), tmp_path)
    scaling = BatchScaling(trainer, position=10.0)
    scaling.use(2)  # the recipe's own batch: position 10 is step 10
    assert trainer.state.step == 10
    base = lr_factor(recipe.schedule, 10, 0) * 1e-3
    scaling.use(8)  # k = 4: lr x 2, gamma^4 per step, warm-up over 2 steps
    assert recipe.generator_optim.lr == pytest.approx(2e-3) and recipe.schedule.gamma == pytest.approx(0.99**4)
    assert recipe.data.batch_size == 8 and trainer.state.step in (2, 3)  # 10 / 4, rounded
    factor = lr_factor(recipe.schedule, trainer.state.step, 0)
    assert factor * recipe.generator_optim.lr == pytest.approx(2 * base * 0.99 ** (4 * trainer.state.step - 10))
    batches = trainer._batches()
    for _ in range(3):
        trainer.train_step(next(batches))
    assert scaling.position() == pytest.approx(4 * trainer.state.step, abs=2.0)  # 3 steps of 4 recipe steps each
    assert scaling.steps() == 3 and scaling.clips() == 24
    scaling.use(2)
    assert recipe.generator_optim.lr == pytest.approx(1e-3) and recipe.schedule.gamma == pytest.approx(0.99)
    assert scaling.steps() == 3 and scaling.clips() == 24 and math.isclose(scaling.position(), trainer.state.step)


def test_a_leg_export_is_a_model_and_its_state(tmp_path):
    recipe = load_recipe(TINY, ["train.device=cpu", "train.export_dtype=float16"])
    trainer = LegTrainer(recipe, _pool(), tmp_path / "run")
    trainer.counters = lambda: LegCounters(3.0, 2, 6, [7])
    batches = trainer._batches()
    for _ in range(3):
        trainer.train_step(next(batches))
    trainer.export(tmp_path / "export")
    model = hificodec.load(tmp_path / "export")  # checks the digest, which lists the state too
    assert (tmp_path / "export" / "checksums.sha256").read_text().count(STATE_FILE) == 1
    state = read_leg_state(tmp_path / "export" / STATE_FILE)
    assert state.generator_digest == hificodec.weights_hash(model) == fp16_weights_digest(trainer.model)
    assert state.counters.legs == [7] and state.discriminators == recipe.discriminators
    disc = state.discriminator_weights()
    assert set(disc) == set(trainer.disc.state_dict()) and all(t.dtype == torch.float16 for t in disc.values()
                                                                if t.is_floating_point())


def test_what_a_leg_of_the_shipped_model_returns_fits_the_device_tool(tmp_path):
    """The shipped generator (12.7 M parameters) and its GAN discriminator after an Adam step: the export with
    its state is 6 files (8 with log.jsonl and leg.log), each under 16 MiB, all under 64 MiB."""
    model = hificodec.load("hificodec-16k")
    model.train()
    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "hificodec-16k" / "gpu-leg.yaml")
    from hificodec.train.discriminators import build_discriminator

    disc = build_discriminator(recipe.discriminators)
    disc.load_state_dict(load_weights(hificodec.checkpoint.resolve_model_dir("hificodec-16k") / "discriminator"
                                      / "discriminator.safetensors"))
    from hificodec.checkpoint import write_model_files

    out = tmp_path / "export"
    out.mkdir()
    write_model_files(model, out, dtype=torch.float16, shard_mib=15)
    write_leg_state(out / STATE_FILE, generator_digest=fp16_weights_digest(model), counters=LegCounters(),
                    optimizers=[("generator", _stepped(model, 1), model), ("discriminator", _stepped(disc, 1), disc)],
                    discriminator=disc, discriminators=recipe.discriminators)
    files = sorted(p for p in out.iterdir())
    sizes = {p.name: p.stat().st_size for p in files}
    assert len(files) + 2 <= 8, sorted(sizes)  # + log.jsonl + leg.log
    assert max(sizes.values()) <= 15 * 2**20 and sum(sizes.values()) <= 60 * 2**20
    assert sizes[STATE_FILE] < 2.5 * 2**20  # it travels to the next leg too
    print({k: round(v / 2**20, 2) for k, v in sizes.items()})


def test_memory_rule_for_a_batch_size():
    """What stays (weights, moments, pool) plus 1.15 x the per-clip activations at the recipe's batch, against
    90 % of the device."""
    from hificodec.train.leg import _Memory

    gib = 2**30
    memory = _Memory(static=2 * gib, peak=9 * gib, batch=64, total=139 * gib)
    assert memory.need_gib(64) == pytest.approx(2 + 1.15 * 7)
    assert memory.need_gib(512) == pytest.approx(2 + 1.15 * 7 * 8) and memory.need_gib(512) < memory.usable_gib
    assert memory.need_gib(2048) > memory.usable_gib == pytest.approx(0.9 * 139)
